"""One soak pass: a synthesised program through one Pipeline, as fast as the CPU allows, its
events written out as they come (nothing kept in memory) and the process's RSS sampled.

Run as a subprocess (`python soak_run.py --bundle B --seconds S --chunk N --out DIR`) so that
its RSS is the pipeline's alone. The soak test and scripts/soak-test.py run two passes with
different chunk sizes and compare their events: the reference run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synth import RATE, ClipPool, Program  # noqa: E402


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def event_key(event) -> list:
    """What must be identical between two runs (wall-clock times are not)."""
    return [event.kind.value if hasattr(event.kind, "value") else str(event.kind),
            event.keyword, int(event.start_sample), int(event.end_sample),
            float(event.confidence)]


def run(bundle_path: str, seconds: float, chunk: int, out: Path, seed: int = 0,
        threshold: float | None = 0.3, rss_every_s: float = 60.0, warmup_s: float = 300.0,
        pool_cache: Path | None = None, keyword_every_s: float = 30.0) -> dict:
    import torch
    from kwsd.config import config_from_dict
    from kwsd.engine.pipeline import Pipeline, PipelineSettings
    from kwsd.model.bundle import load_bundle

    torch.set_num_threads(1)
    bundle = load_bundle(bundle_path)
    data: dict = {}
    if threshold is not None:
        data["decision"] = {"thresholds": {k: threshold for k in bundle.keywords}}
    settings = PipelineSettings.from_config(config_from_dict(data))
    pool = ClipPool.build(bundle.keywords, pool_cache)
    program = Program(pool, seconds, seed, keyword_every_s)
    pipeline = Pipeline(bundle, "soak", settings)
    out.mkdir(parents=True, exist_ok=True)
    rss: list[tuple[float, int]] = []
    next_rss = 0.0
    n_events = 0
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    pos = 0
    start_time = 1_700_000_000.0  # fixed capture clock: events do not depend on today
    with open(out / "events.jsonl", "w") as ev_file:
        def write(events) -> None:
            nonlocal n_events
            for e in events:
                ev_file.write(json.dumps(event_key(e)) + "\n")
                n_events += 1

        from kwsd.audio.chunk import AudioChunk
        for samples in program.chunks(chunk):
            write(pipeline.process(AudioChunk(samples, pos, start_time + pos / RATE)))
            pos += len(samples)
            if pos / RATE >= next_rss:
                gc.collect()
                rss.append((pos / RATE, rss_bytes()))
                next_rss += rss_every_s
        write(pipeline.flush())
    gc.collect()
    rss.append((pos / RATE, rss_bytes()))
    wall = time.perf_counter() - t0
    after = [b for t, b in rss if t >= warmup_s]
    at_warm = after[0] if after else rss[-1][1]
    summary = {
        "audio_s": pos / RATE, "wall_s": round(wall, 2),
        "cpu_s": round(time.process_time() - cpu0, 2),
        "rtf": round(wall / (pos / RATE), 4), "chunk": chunk, "events": n_events,
        "detections": pipeline.detections, "keywords_scheduled": len(program.schedule),
        "vad_duty_cycle": round(pipeline.vad_duty_cycle, 4),
        "rss_start_mb": round(rss[0][1] / 2**20, 2), "rss_warm_mb": round(at_warm / 2**20, 2),
        "rss_end_mb": round(rss[-1][1] / 2**20, 2),
        "rss_max_after_warmup_mb": round(max(after or [at_warm]) / 2**20, 2),
        "rss_growth_after_warmup_mb": round((max(after or [at_warm]) - at_warm) / 2**20, 3),
        "warmup_s": warmup_s, "rss": rss,
    }
    (out / "schedule.json").write_text(json.dumps(
        [[k.keyword, k.start_sample, k.end_sample] for k in program.schedule]))
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def soak(bundle_path: str, seconds: float, out: Path, *, chunks: tuple[int, int] = (800, 4000),
         seed: int = 0, threshold: float | None = 0.3, warmup_s: float = 300.0,
         rss_every_s: float = 60.0, pool_cache: Path | None = None, nice: int = 15,
         timeout_s: float | None = None) -> dict:
    """Two passes in parallel subprocesses (the soak pass with live-sized chunks, the reference
    with another chunking); returns both summaries and whether their events are identical."""
    import subprocess

    pool_cache = pool_cache or out / "pool.npz"
    if not pool_cache.is_file():  # render once, not twice at the same time
        import kwsd.model.bundle as mb
        ClipPool.build(mb.load_bundle(bundle_path).keywords, pool_cache)
    procs = []
    for name, chunk in zip(("soak", "reference"), chunks, strict=True):
        cmd = ["nice", "-n", str(nice), sys.executable, __file__, "--bundle", str(bundle_path),
               "--seconds", str(seconds), "--chunk", str(chunk), "--seed", str(seed),
               "--threshold", str(-1 if threshold is None else threshold),
               "--rss-every", str(rss_every_s), "--warmup", str(warmup_s),
               "--pool-cache", str(pool_cache), "--out", str(out / name)]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    results = {}
    for name, proc in zip(("soak", "reference"), procs, strict=True):
        stdout, stderr = proc.communicate(timeout=timeout_s)
        if proc.returncode != 0:
            raise RuntimeError(f"{name} pass failed (rc {proc.returncode}): {stderr[-2000:]}")
        results[name] = json.loads((out / name / "summary.json").read_text())
    a = (out / "soak" / "events.jsonl").read_text().splitlines()
    b = (out / "reference" / "events.jsonl").read_text().splitlines()
    first_diff = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)
    if first_diff is None and len(a) != len(b):
        first_diff = min(len(a), len(b))
    results["identical"] = first_diff is None
    results["first_difference"] = None if first_diff is None else {
        "index": first_diff, "soak": a[first_diff] if first_diff < len(a) else None,
        "reference": b[first_diff] if first_diff < len(b) else None}
    results["events"] = len(a)
    results["detections"] = sum(1 for line in a if line.startswith('["detection"'))
    schedule = json.loads((out / "soak" / "schedule.json").read_text())
    dets = [json.loads(line) for line in a if line.startswith('["detection"')]
    results["keywords_scheduled"] = len(schedule)
    results["keywords_found"] = sum(
        1 for kw, s, e in schedule
        if any(d[1] == kw and d[2] < e + RATE // 2 and d[3] > s - RATE // 2 for d in dets))
    (out / "result.json").write_text(json.dumps(
        {k: ({kk: vv for kk, vv in v.items() if kk != "rss"} if isinstance(v, dict)
             and "rss" in v else v) for k, v in results.items()}, indent=1))
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--chunk", type=int, default=800)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threshold", type=float, default=0.3,
                    help="per-keyword threshold (random weights need a low one); <0 = bundle's")
    ap.add_argument("--rss-every", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=300.0)
    ap.add_argument("--pool-cache", type=Path)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args(argv)
    s = run(a.bundle, a.seconds, a.chunk, a.out, a.seed,
            None if a.threshold < 0 else a.threshold, a.rss_every, a.warmup, a.pool_cache)
    print(json.dumps({k: v for k, v in s.items() if k != "rss"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
