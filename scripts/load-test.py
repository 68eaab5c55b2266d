#!/usr/bin/env python3
"""Load test: `kwsd serve` (its own source: a speech WAV played in real time, standing in for
the microphone) with N subscribers, one subscriber that never reads, and an increasing number
of concurrent real-time Detect streams; prints per step whether real time held, detection
latency p50/p95, daemon CPU and RSS, and whether the daemon's own source lost any detection
(its events on a subscriber equal the offline pipeline's on the same samples).

    nice -n 15 .venv/bin/python scripts/load-test.py --subscribers 100 --seconds 30
    (default bundle: random weights, demo size; --bundle models/demo for the demo model,
    --random-size distilhubert for real-size random weights; --set engine.max_batch=1 runs
    every stream alone, without the batching scheduler)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "daemon"))
sys.path.insert(0, str(REPO / "tests" / "reliability"))

import numpy as np  # noqa: E402
from load import run_load  # noqa: E402
from synth import ClipPool, Program  # noqa: E402


def start_daemon(bundle: Path, wav: Path, sock: Path, threshold: float | None, nice: int,
                 max_streams: int, log: Path, sensitivity: str | None = None,
                 settings: tuple[str, ...] = ()) -> subprocess.Popen:
    import grpc

    args = [sys.executable, "-m", "kwsd", "serve", "--model", str(bundle), "--wav", str(wav),
            "--realtime", "--loop", "--source-id", "mic", "--socket", str(sock),
            "--set", f"api.max_streams={max_streams}", "--set", "api.max_subscribers=200",
            "--set", "engine.warmup=true"]
    for item in settings:
        args += ["--set", item]
    if threshold is not None:
        args += ["--threshold", f"yes={threshold}", "--threshold", f"no={threshold}"]
    if sensitivity:
        args += ["--sensitivity", sensitivity]
    proc = subprocess.Popen(["nice", "-n", str(nice), *args], stdout=subprocess.DEVNULL,
                            stderr=open(log, "w"), env=dict(os.environ,
                                                            PYTHONPATH=str(REPO / "daemon")))
    try:
        with grpc.insecure_channel(f"unix:{sock}") as ch:
            grpc.channel_ready_future(ch).result(timeout=900)  # a starved machine: slow
    except BaseException:
        proc.terminate()
        proc.wait(30)
        raise
    return proc


def source_check(bundle: Path, samples: np.ndarray, subs, threshold: float | None,
                 sensitivity: str | None = None) -> dict:
    """The daemon's own source: the detections a subscriber saw = the offline pipeline's."""
    from kwsd.config import config_from_dict
    from kwsd.engine.pipeline import Pipeline, PipelineSettings
    from kwsd.events import EventKind
    from kwsd.model.bundle import load_bundle

    seen = subs[0].events
    if not seen:
        return {"source_detections": 0, "source_identical": None}
    hi = max(e[4] for e in seen)
    data = {"decision": {"thresholds": {"yes": threshold, "no": threshold}}} \
        if threshold is not None else {}
    if sensitivity:
        data["decision"] = {**data.get("decision", {}), "sensitivity": sensitivity}
    looped = np.tile(samples, hi // len(samples) + 2)
    ref = Pipeline(load_bundle(bundle), "ref", PipelineSettings.from_config(
        config_from_dict(data))).run(looped[: hi + 3 * 16000])
    lo = min(e[3] for e in seen)
    want = [(e.keyword, e.start_sample, e.end_sample, round(float(e.confidence), 6))
            for e in ref if e.kind == EventKind.DETECTION and lo < e.start_sample
            and e.end_sample <= hi]
    got = [(e[2], e[3], e[4], e[5]) for e in seen if e[1] == 1 and lo < e[3]]
    # keyword and samples exactly; the confidence within 2e-2: the daemon computes with one
    # torch thread and batches windows, this process with its own thread count, and in bf16
    # (kwsd-demo-6) a different summation order moves the confidence a little (seen: 5e-6 with
    # batches of one, 2.2e-4 at 56 streams; up to a few bfloat16 steps where a conv output
    # rounds to the neighbouring bf16 value: tests/engine/test_batching.py says why)
    same = len(got) == len(want) and all(
        g[:3] == w[:3] and abs(g[3] - w[3]) <= 2e-2 for g, w in zip(got, want, strict=True))
    return {"source_detections": len(got), "source_identical": same}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path)
    ap.add_argument("--subscribers", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=30.0, help="per step")
    ap.add_argument("--streams", default="1,2,3,4,6,8,10,12,16",
                    help="stream counts to try, in order; stops after the first that fails")
    ap.add_argument("--fast-client", action="store_true",
                    help="also run one client sending as fast as it can")
    ap.add_argument("--nice", type=int, default=15)
    ap.add_argument("--sensitivity", choices=["low", "medium", "high"],
                    help="the bundle's sensitivity level (more detections to compare)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--set", action="append", default=[], metavar="SECTION.OPTION=VALUE",
                    help="passed to `kwsd serve --set` (e.g. engine.max_batch=1)")
    ap.add_argument("--random-size", choices=["demo", "distilhubert"], default="demo",
                    help="encoder size of the random-weights bundle (without --bundle)")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="kwsd-load-"))
    threshold = None
    bundle = a.bundle
    if bundle is None:
        from kwsd.model.bundle import make_random_bundle
        bundle = make_random_bundle(work / "bundle", a.random_size, ("yes", "no"), seed=0)
        threshold = 0.3
    from kwsd.audio.audiofile import write_wav_16k
    from kwsd.model.bundle import load_bundle
    keywords = load_bundle(bundle).keywords
    samples = Program(ClipPool.build(keywords, work / "pool.npz"), 60.0, seed=7,
                      keyword_every_s=8.0).samples()
    wav = work / "speech.wav"
    write_wav_16k(wav, samples)
    steps = [int(x) for x in a.streams.split(",")]
    proc = start_daemon(bundle, wav, work / "kwsd.sock", threshold, a.nice, max(steps) + 2,
                        work / "serve.log", a.sensitivity, tuple(a.set))
    results = []
    try:
        time.sleep(3)
        print(f"load average before: {os.getloadavg()}; daemon pid {proc.pid} (nice {a.nice}); "
              f"settings {a.set or 'default'}")
        print("streams subs  held  lat_p50 lat_p95  dets  cpu%   rss_max  lag_max  "
              "src_dets src_same  lost(sub/non-reader)")
        for n in steps:
            r = run_load(f"unix:{work / 'kwsd.sock'}", samples, streams=n,
                         subscribers=a.subscribers, duration_s=a.seconds, daemon_pid=proc.pid,
                         fast_chunk_bytes=64 * 1024 if a.fast_client else 0)
            r.update(source_check(bundle, samples, r["_subs"], threshold, a.sensitivity)
                     if r["source_overflows"] == 0 else  # audio was dropped (and counted)
                     {"source_detections": -1, "source_identical": None})
            results.append({k: v for k, v in r.items() if not k.startswith("_")})
            print(f"{n:7d} {a.subscribers:4d}  {str(r['held']):5s} {r['latency_p50_s']:7.3f} "
                  f"{r['latency_p95_s']:7.3f} {r['detections']:5d} {r['daemon_cpu_percent']:5.1f} "
                  f"{r['rss_max_mb']:8.1f} {r['max_lag_s']:8.3f} {r['source_detections']:8d} "
                  f"{str(r['source_identical']):8s} {r['subscriber_lost']}/{r['non_reader_lost']}"
                  + (f"  batch mean {r['batch_recent_mean']} max {r['batch_max']} wait p95 "
                     f"{r['queue_wait_p95_ms']} ms late {r['late_windows']}"
                     if r["batch_max"] else "")
                  + (f"  fast: sent {r['fast_sent_mb']} MB, processed {r['fast_processed_s']} s"
                     if a.fast_client else "") + (f"  errors {r['stream_errors'][:2]}"
                                                  if r["stream_errors"] else ""), flush=True)
            if not r["held"]:
                break
    finally:
        proc.terminate()
        proc.wait(30)
    held = [r["streams"] for r in results if r["held"]]
    print(f"real time held up to {max(held) if held else 0} concurrent Detect streams with "
          f"{a.subscribers} subscribers; load average after: {os.getloadavg()}")
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
