#!/usr/bin/env python3
"""Measure the daemon live, through a real sound server (the tests' virtual microphone):

1. CPU of a `kwsd serve` process, in % of one core, while the mic hears silence, background
   noise, and continuous speech (utime+stime from /proc over each phase).
2. Detection latency: keywords (espeak-ng renderings of the model's keywords) go into the
   microphone; for each, the time from the moment its last sample was written into the
   microphone to (a) the moment the first window that contains the whole keyword has been
   computed ("window latency", defined for any model, random weights included) and (b) the
   detection event (only meaningful with a trained model).

Usage: .venv/bin/python scripts/measure-daemon.py [--model DIR] [--phase-s 30] [--json OUT]
Nice it on a shared machine; numbers are CPU time, so contention inflates them only a little.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "daemon"), str(REPO / "tests")]

from audio.speech import espeak, silence  # noqa: E402
from audio.virtual_mic import VirtualMic  # noqa: E402
from kwsd.audio.chunk import SAMPLE_RATE  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
TEXT = ("the quick brown fox jumps over the lazy dog while the band plays on and everyone "
        "in the room keeps talking about the weather, the news and what to cook tonight")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def pink_noise(seconds: float, dbfs: float, seed: int = 0) -> np.ndarray:
    n = int(seconds * SAMPLE_RATE)
    spec = np.fft.rfft(np.random.default_rng(seed).normal(size=n))
    spec /= np.sqrt(np.maximum(np.arange(len(spec)), 1))
    x = np.fft.irfft(spec, n)
    x *= 32768 * 10 ** (dbfs / 20) / (np.sqrt(np.mean(x ** 2)) + 1e-12)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def speech_for(seconds: float) -> np.ndarray:
    parts, total = [], 0
    voices = ["en-us", "en-gb", "en-us+f3", "en-us+m3"]
    i = 0
    while total < seconds * SAMPLE_RATE:
        s = espeak(TEXT, voice=voices[i % len(voices)])
        parts += [s, silence(0.15)]
        total += len(s) + int(0.15 * SAMPLE_RATE)
        i += 1
    return np.concatenate(parts)[: int(seconds * SAMPLE_RATE)]


def measure_cpu(mic: VirtualMic, model: str, phase_s: float, extra: list[str]) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO / "daemon"), **mic.env())
    proc = subprocess.Popen([sys.executable, "-m", "kwsd", "serve", "--model", model,
                             "--no-api", *extra], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    log: list[str] = []
    threading.Thread(target=lambda: log.extend(proc.stderr), daemon=True).start()
    try:
        deadline = time.monotonic() + 180
        while not any("ready:" in line for line in log):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"serve did not start: {log[-10:]}")
            time.sleep(0.1)
        time.sleep(3.0)
        out = {}
        for name, audio in (("silence", None),
                            ("noise_pink_-45dBFS", pink_noise(phase_s + 4, -45)),
                            ("noise_pink_-30dBFS", pink_noise(phase_s + 4, -30, seed=1)),
                            ("speech", speech_for(phase_s + 4))):
            if audio is not None:
                mic.feed(audio)
            time.sleep(3.0)                          # settle into the phase
            c0, t0 = cpu_seconds(proc.pid), time.monotonic()
            time.sleep(phase_s)
            c1, t1 = cpu_seconds(proc.pid), time.monotonic()
            out[name] = round(100 * (c1 - c0) / (t1 - t0), 2)
            mic.wait_drained(10)
            print(f"cpu {name}: {out[name]} % of one core", flush=True)
        return out
    finally:
        proc.terminate()
        proc.wait(10)


def measure_latency(mic: VirtualMic, model: str, repeats: int) -> dict:
    from kwsd.config import load_config
    from kwsd.engine.daemon import Daemon
    from kwsd.events import EventKind

    mic.activate()
    daemon = Daemon(load_config(None, {"model.path": model}, missing_ok=True))
    sub = daemon.bus.subscribe("measure", lambda e: e.kind == EventKind.DETECTION, 1000)
    daemon.start()
    runner = daemon._runners[0]
    windows: list[tuple[float, float]] = []   # (wall time of window end audio, computed at)

    while runner.source.state.value != "running":
        time.sleep(0.1)
    pipeline = runner.pipeline
    update = pipeline.decision.update

    def timed_update(start: int, end: int, probs):
        windows.append((pipeline._wall_time(end), time.time()))
        return update(start, end, probs)

    pipeline.decision.update = timed_update
    keywords = list(daemon.bundle.keywords)
    voices = ["en-us", "en-gb", "en-us+f3"]
    truth = []
    mic.feed(silence(1.0))
    for r in range(repeats):
        for kw in keywords:
            audio = espeak(kw, voice=voices[r % len(voices)])
            start = mic.feed(audio)
            truth.append((kw, start, start + len(audio)))
            mic.feed(silence(2.5))
    mic.wait_drained(len(truth) * 5 + 30)
    time.sleep(2.0)
    dets = []
    while (ev := sub.get(0.1)) is not None:
        dets.append(ev)
    daemon.stop()
    win_lat, det_lat, hits = [], [], 0
    for kw, start, end in truth:
        t_start, t_end = mic.written_at(start), mic.written_at(end - 1)
        # (a) first window whose audio reaches the keyword's end
        later = [done for audio_t, done in windows if audio_t >= t_end - 0.005]
        if later:
            win_lat.append(min(later) - t_end)
        # (b) the detection of this keyword, if any
        for ev in dets:
            audio_end = ev.extra.get("audio_end_time", 0)
            if ev.keyword == kw and t_start - 0.3 <= audio_end <= t_end + 1.0:
                det_lat.append(ev.wall_time - t_end)
                hits += 1
                break

    def stats(xs):
        if not xs:
            return None
        a = np.asarray(xs) * 1000
        return {"n": len(a), "median_ms": round(float(np.median(a)), 1),
                "p95_ms": round(float(np.percentile(a, 95)), 1),
                "max_ms": round(float(a.max()), 1)}

    return {"keywords_spoken": len(truth), "detected": hits,
            "window_latency": stats(win_lat), "detection_latency": stats(det_lat),
            "hop_ms": int(daemon.bundle.hop_samples) * 1000 // SAMPLE_RATE,
            "window_ms": int(daemon.bundle.window_samples) * 1000 // SAMPLE_RATE}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=str(REPO / "models" / "demo"))
    ap.add_argument("--phase-s", type=float, default=30.0)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--skip-cpu", action="store_true")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--set", action="append", default=[], help="passed to kwsd serve")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="kwsd-measure-") as tmp:
        mic = VirtualMic(Path(tmp) / "vmic")
        mic.start()
        try:
            result = {"model": args.model}
            if not args.skip_cpu:
                extra = [f"--set={item}" for item in args.set]
                result["cpu_percent_of_one_core"] = measure_cpu(mic, args.model, args.phase_s,
                                                                extra)
            if not args.skip_latency:
                result["latency"] = measure_latency(mic, args.model, args.repeats)
        finally:
            mic.stop()
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
