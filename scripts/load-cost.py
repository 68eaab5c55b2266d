#!/usr/bin/env python3
"""CPU cost of kwsd's load, in CPU seconds (meaningful even on a busy machine, where wall-clock
real-time figures are not): one in-process daemon + gRPC server; (1) 100 idle subscribers for
20 s, (2) Detect streams of synthesised speech sent as fast as flow control allows, and the
process CPU time per second of audio. Capacity estimate = cores / (CPU s per audio s).

    nice -n 15 .venv/bin/python scripts/load-cost.py [--bundle models/demo]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "daemon"))
sys.path.insert(0, str(REPO / "tests" / "reliability"))

import grpc  # noqa: E402
import numpy as np  # noqa: E402
from synth import ClipPool, Program  # noqa: E402


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path)
    ap.add_argument("--audio-s", type=float, default=60.0)
    ap.add_argument("--streams", type=int, default=2)
    a = ap.parse_args()
    from kwsd.api.v1 import kwsd_pb2 as pb
    from kwsd.api.v1 import kwsd_pb2_grpc as pb_grpc
    from kwsd.audio.audiofile import write_wav_16k
    from kwsd.config import config_from_dict
    from kwsd.engine.daemon import Daemon
    from kwsd.model.bundle import load_bundle, make_random_bundle
    from kwsd.server.grpc_server import start

    work = Path(tempfile.mkdtemp(prefix="kwsd-cost-", dir="/tmp"))
    bundle, thr = a.bundle, {}
    if bundle is None:
        bundle = make_random_bundle(work / "b", "demo", ("yes", "no"), seed=0)
        thr = {"thresholds": {"yes": 0.3, "no": 0.3}}
    samples = Program(ClipPool.build(load_bundle(bundle).keywords, work / "pool.npz"),
                      a.audio_s, seed=7, keyword_every_s=8.0).samples()
    wav = work / "silence.wav"
    write_wav_16k(wav, np.zeros(16000, np.int16))
    config = config_from_dict({
        "model": {"path": str(bundle)}, "decision": thr,
        "audio": {"source": "wav", "wav": str(wav), "realtime": True, "loop": True},
        "engine": {"torch_threads": 1}, "api": {"socket": str(work / "k.sock")}})
    daemon = Daemon(config)
    daemon.start()
    handle = start(daemon, config.api)
    try:
        with grpc.insecure_channel(handle.address) as ch:
            stub = pb_grpc.KwsdStub(ch)
            time.sleep(2)
            c0, t0 = cpu(), time.monotonic()
            time.sleep(10)
            base = (cpu() - c0) / (time.monotonic() - t0)
            subs = [stub.Subscribe(pb.SubscribeRequest(client_name=f"s{i}")) for i in range(100)]
            for s in subs:
                s.initial_metadata()
            c0, t0 = cpu(), time.monotonic()
            time.sleep(20)
            with_subs = (cpu() - c0) / (time.monotonic() - t0)
            print(f"daemon idle (silence source): {100 * base:.1f} % of a core; with 100 idle "
                  f"subscribers: {100 * with_subs:.1f} %")

            def detect(out: list) -> None:
                def reqs():
                    yield pb.DetectRequest(config=pb.DetectConfig(
                        sample_rate_hz=16000, encoding=pb.LINEAR16, channels=1))
                    for i in range(0, len(samples), 1600):
                        yield pb.DetectRequest(audio=samples[i:i + 1600].tobytes())
                out.extend(stub.Detect(reqs(), timeout=3600))

            outs = [[] for _ in range(a.streams)]
            c0, t0 = cpu(), time.monotonic()
            threads = [threading.Thread(target=detect, args=(o,)) for o in outs]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            spent = cpu() - c0 - with_subs * (time.monotonic() - t0)
            audio = a.streams * len(samples) / 16000
            per = spent / audio
            print(f"{a.streams} Detect streams, {audio:.0f} s of speech in all (VAD open "
                  f"{daemon.status()['vad_duty_cycle'] * 100:.0f} % on the source; speech-heavy "
                  f"audio): {spent:.1f} CPU s = {per:.4f} CPU s per audio s (client side "
                  f"included); detections {sum(len(o) - 1 for o in outs)}")
            cores = os.cpu_count() or 1
            print(f"estimate: {cores} idle cores hold about {int(cores / per * 0.8)} real-time "
                  f"streams of continuous speech with 100 subscribers (80 % of the CPU)")
            for s in subs:
                s.cancel()
    finally:
        handle.stop(0.5)
        daemon.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
