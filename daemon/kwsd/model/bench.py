"""Speed, memory and accuracy of streaming encoder + head, for `kwsd bench`.

Run as `python -m kwsd.model.bench speed|footprint --bundle PATH` it measures one bundle in
its own process (so peak RSS and load time belong to that model alone) and prints one JSON
object; `kwsd bench` (commands/bench.py) builds the bundles and runs these processes.
Weights are random (the real ones can't be fetched here); speed does not depend on them, and
accuracy is reported as the difference of each variant from the plain fp32 per-window
computation on the same audio.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

VARIANTS = {
    # name: (precision, cache conv features)
    "window-fp32": ("fp32", False),
    "cache-fp32": ("fp32", True),
    "cache-bf16-conv": ("bf16-conv", True),
    "cache-bf16": ("bf16", True),
    "cache-bf16-conv-int8": ("bf16-conv-int8", True),
    "cache-int8": ("int8", True),
}


def speech_like(seconds: float, seed: int = 0) -> np.ndarray:
    """Voiced, syllable-modulated harmonic signal with noise: keeps every part busy like speech
    (the encoder's cost does not depend on content; accuracy deltas do, a little)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t) + 20 * np.sin(2 * np.pi * 3.1 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 16000
    voiced = sum(np.sin(k * phase) / k for k in range(1, 20))
    env = np.clip(np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6)), 0, None) ** 0.5
    x = 0.3 * voiced * env + 0.05 * rng.normal(size=n) * (1 - env)
    return (np.clip(x / np.abs(x).max(), -1, 1) * 20000).astype(np.int16)


def stream_rtf(bundle, precision: str, cache: bool | None, audio: np.ndarray, threads: int,
               chunk: int = 1600, cascade: str | None = None,
               schedule: list[bool] | None = None) -> dict[str, Any]:
    """Stream `audio` (after a warm-up of one window and two hops) through one classifier:
    wall and process-CPU seconds per audio second, per-part time. `cache` None: the bundle's
    conv-cache setting; `cascade` None: the bundle's (kws.json streaming.cascade), else "on" /
    "off"; `schedule`: the cascade's pass/reject per window from another run (its cost at that
    pattern), with the pass rate reported. Also used by `kwsd bench --bundle`."""
    import torch

    from kwsd.model.streaming import StreamingClassifier

    torch.set_num_threads(threads)
    # One thread: per-part times in thread CPU time, robust to other processes on the machine.
    clock = time.thread_time if threads == 1 else time.perf_counter
    clf = StreamingClassifier(bundle, precision=precision, cache_conv=cache, clock=clock,
                              cascade=cascade)
    if clf.gate is not None:
        clf.gate.schedule = schedule
        clf.gate.trace = []
    warm = bundle.window_samples + 2 * bundle.hop_samples  # first windows: not steady state
    for i in range(0, warm, chunk):
        clf.accept(audio[i:i + chunk], i)
    for k in clf.timings:
        clf.timings[k] = 0.0
    gate0 = (clf.gate.windows, clf.gate.passed) if clf.gate is not None else (0, 0)
    posts = 0
    t0 = time.perf_counter()
    c0 = time.process_time()
    for i in range(warm, len(audio), chunk):
        posts += len(clf.accept(audio[i:i + chunk], i))
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    seconds = (len(audio) - warm) / 16000
    extra: dict[str, Any] = {}
    if clf.gate is not None:
        n, p = clf.gate.windows - gate0[0], clf.gate.passed - gate0[1]
        extra = {"cascade": True, "pass_rate": round(p / n, 4) if n else 0.0,
                 "pass_trace": "".join("1" if x else "0" for x in clf.gate.trace)}
    return {"threads": threads, "rtf": round(wall / seconds, 4),
            "cpu_rtf": round(cpu / seconds, 4), "audio_s": round(seconds, 2),
            "posteriors": posts, **extra,
            "per_part_clock": "thread_cpu" if threads == 1 else "wall",
            "per_part_ms_per_audio_s": {k: round(1000 * v / seconds, 2)
                                        for k, v in clf.timings.items()}}


def _accuracy(bundle, precision: str, cache: bool, clips: list[np.ndarray],
              references: list[tuple[Any, np.ndarray]]) -> dict[str, float]:
    """Difference from the plain fp32 per-window computation, over every window of the clips:
    posteriors (max abs) and the last hidden state (relative L2 per window: max and mean)."""
    import torch

    from kwsd.model.streaming import StreamingClassifier, posteriors_from_states

    torch.set_num_threads(1)
    clf = StreamingClassifier(bundle, precision=precision, cache_conv=cache)
    post, rels = 0.0, []
    for clip, (ref_states, ref_probs) in zip(clips, references, strict=True):
        _, states = clf.window_states(clip)
        last, ref_last = states[:, -1], ref_states[:, -1]
        rels.append((last - ref_last).flatten(1).norm(dim=1) / ref_last.flatten(1).norm(dim=1))
        probs = posteriors_from_states(bundle, states)
        post = max(post, float(np.abs(probs - ref_probs).max()))
    rel = torch.cat(rels)
    return {"max_abs_posterior_diff": post, "max_rel_last_state_diff": float(rel.max()),
            "mean_rel_last_state_diff": float(rel.mean()), "windows": len(rel)}


def accuracy_clips(wavs: list[Path]) -> list[np.ndarray]:
    """Audio for the accuracy comparison: the given recordings, or synthetic speech."""
    if not wavs:
        return [speech_like(3.0, seed=1)]
    from kwsd.audio.audiofile import read_audio_16k

    return [read_audio_16k(w) for w in wavs]


def measure_speed(bundle_path: Path, seconds: float, threads: list[int],
                  variants: list[str], wavs: list[Path] | None = None) -> dict[str, Any]:
    """RTF (1 and 2 threads), per-part time and accuracy of each variant on one bundle."""
    import torch

    from kwsd.model.bundle import load_bundle
    from kwsd.model.runtime import shared_inference_encoder
    from kwsd.model.streaming import StreamingClassifier, posteriors_from_states

    bundle = load_bundle(bundle_path)
    cfg = bundle.encoder.config
    audio = speech_like(seconds + 1.4)
    clips = accuracy_clips(wavs or [])
    torch.set_num_threads(1)
    plain = StreamingClassifier(bundle, precision="fp32", cache_conv=False)
    references = []
    for clip in clips:
        _, ref_states = plain.window_states(clip)
        references.append((ref_states, posteriors_from_states(bundle, ref_states)))
    out: dict[str, Any] = {
        "feat_extract_norm": cfg.feat_extract_norm,
        "params_m": round(sum(p.numel() for p in bundle.encoder.parameters()) / 1e6, 2),
        "window_ms": 1000 * bundle.window_samples // 16000,
        "hop_ms": 1000 * bundle.hop_samples // 16000,
        "accuracy_audio": [str(w) for w in wavs] if wavs else "synthetic speech-like, 3 s",
        "variants": {},
    }
    for v in variants:
        precision, cache = VARIANTS[v]
        t0 = time.perf_counter()
        shared_inference_encoder(bundle, precision)
        prep_s = time.perf_counter() - t0
        runs = [stream_rtf(bundle, precision, cache, audio, n) for n in threads]
        acc = _accuracy(bundle, precision, cache, clips, references)
        out["variants"][v] = {"precision": precision, "cache_conv": cache,
                              "prepare_s": round(prep_s, 3), "runs": runs, "vs_window_fp32": acc}
    return out


def measure_footprint(bundle_path: Path, precision: str, cache: bool) -> dict[str, Any]:
    """What the daemon pays: torch import, bundle load, conversion, and peak RSS while
    streaming 3 s (run in a fresh process)."""
    t0 = time.perf_counter()
    import torch  # noqa: F401

    t1 = time.perf_counter()
    from kwsd.model.bundle import load_bundle
    from kwsd.model.streaming import StreamingClassifier

    t2 = time.perf_counter()
    bundle = load_bundle(bundle_path)
    t3 = time.perf_counter()
    clf = StreamingClassifier(bundle, precision=precision, cache_conv=cache)
    t4 = time.perf_counter()
    audio = speech_like(3.0)
    for i in range(0, len(audio), 1600):
        clf.accept(audio[i:i + 1600], i)
    return {"precision": precision, "cache_conv": cache,
            "import_torch_s": round(t1 - t0, 3), "load_bundle_s": round(t3 - t2, 3),
            "prepare_s": round(t4 - t3, 3),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kwsd.model.bench")
    p.add_argument("mode", choices=["speed", "footprint", "cascade", "pattern"])
    p.add_argument("--bundle", type=Path, required=True)
    p.add_argument("--seconds", type=float, default=4.0)
    p.add_argument("--threads", default="1,2")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--variant", default="cache-fp32", help="footprint: the variant to load")
    p.add_argument("--accuracy-wav", action="append", type=Path, default=[],
                   help="speed: recording(s) for the accuracy comparison (default synthetic)")
    p.add_argument("--repeats", type=int, default=3, help="cascade: rounds (median counts)")
    p.add_argument("--real-train", type=Path, default=Path("../shared/data/real-train"),
                   help="cascade: real speech to measure on (else the bundle's demo.wav)")
    p.add_argument("--trace-file", type=Path, default=None,
                   help="pattern: file holding a cascade pass trace ('1'/'0' per window)")
    a = p.parse_args(argv)
    if a.mode == "cascade":  # a real bundle on real speech, cascade off and on
        import torch

        from kwsd.evaluation.cascade_bench import bench_bundle, shipped_bundle_audio
        from kwsd.model.bundle import load_bundle

        torch.set_num_threads(1)
        clips, desc = shipped_bundle_audio(a.bundle, a.real_train)
        bundle = load_bundle(a.bundle)
        result = {"bundle": str(a.bundle), "model": bundle.model_id, "audio": desc,
                  **bench_bundle(bundle, clips, a.seconds, a.repeats)}
    elif a.mode == "pattern":  # a (random) bundle at another bundle's measured pass pattern
        from kwsd.evaluation.cascade_bench import cost_at_pattern
        from kwsd.model.bundle import load_bundle

        trace = a.trace_file.read_text().strip() if a.trace_file else ""
        result = cost_at_pattern(load_bundle(a.bundle), *VARIANTS[a.variant], trace, a.seconds,
                                 a.repeats)
    elif a.mode == "speed":
        variants = [v for v in a.variants.split(",") if v]
        unknown = sorted(set(variants) - set(VARIANTS))
        if unknown:
            p.error(f"unknown variants {unknown}; choose from {sorted(VARIANTS)}")
        threads = [int(t) for t in a.threads.split(",")]
        result = measure_speed(a.bundle, a.seconds, threads, variants, a.accuracy_wav)
    else:
        result = measure_footprint(a.bundle, *VARIANTS[a.variant])
    result["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
