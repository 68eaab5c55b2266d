"""What the two-stage cascade costs and saves, on real speech, for `kwsd bench`.

A cascade's cost depends on the audio (how often stage one passes), so it is measured on real
speech, never on silence: real-train recordings (the audio `kwsd bench --bundle` uses for the
precision choice; WUW-II callers saying keywords, and other real speech), else the bundle's
demo.wav. Each run streams the audio end to end through one classifier at one torch thread
(kwsd.model.bench.stream_rtf) with the cascade off and on, interleaved over rounds; the median
counts. The pass pattern measured with a real bundle can be replayed on another encoder (the
real-size DistilHuBERT with random weights, whose stage one would say nothing meaningful): that
gives its cost at the pass rate real speech produces with a trained stage one.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import numpy as np

from kwsd.model.cascade import STAGE_ONE_FILE, Cascade, CascadeSettings, StageOne, StageOneConfig


def speed_audio(clips: list[np.ndarray], seconds: float, warm_samples: int) -> np.ndarray:
    """The clips end to end (repeated if short): `seconds` after the warm-up."""
    joined = np.concatenate(clips)
    need = int(seconds * 16000) + warm_samples
    return np.tile(joined, -(-need // max(1, len(joined))))[:need]


def bench_bundle(bundle, clips: list[np.ndarray], seconds: float, repeats: int,
                 precision: str | None = None) -> dict[str, Any]:
    """CPU-s per audio second with the cascade off and on (the bundle's precision), stage
    one's pass rate, and which of the two the bundle runs by default."""
    from kwsd.model.bench import stream_rtf
    from kwsd.model.cascade import cascade_active
    from kwsd.model.precision import resolve_precision

    precision = precision or resolve_precision(bundle.meta)
    warm = int(bundle.window_samples + 2 * bundle.hop_samples)
    audio = speed_audio(clips, seconds, warm)
    modes = ["off", "on"] if bundle.cascade is not None else ["off"]
    runs: dict[str, list[dict]] = {m: [] for m in modes}
    for r in range(max(1, repeats)):
        for m in (modes if r % 2 == 0 else modes[::-1]):
            runs[m].append(stream_rtf(bundle, precision, None, audio, 1, cascade=m))
    out: dict[str, Any] = {
        "precision": precision,
        "default": "on" if cascade_active(bundle.cascade, None) else "off",
        "audio_s_per_run": round(seconds, 1), "runs": max(1, repeats), "torch_threads": 1,
    }
    for m, rs in runs.items():
        cpu = [x["cpu_rtf"] for x in rs]
        parts = {k: round(statistics.median(x["per_part_ms_per_audio_s"][k] for x in rs), 2)
                 for k in rs[0]["per_part_ms_per_audio_s"]}
        parts.setdefault("stage_one", 0.0)
        out[m] = {"cpu_s_per_audio_s": round(statistics.median(cpu), 4),
                  "cpu_s_per_audio_s_runs": cpu, "per_part_ms_per_audio_s": parts}
        if m == "on":
            out[m]["pass_rate"] = rs[0]["pass_rate"]
            out["pass_trace"] = rs[0]["pass_trace"]
    if "on" in out:
        out["on_vs_off"] = round(out["on"]["cpu_s_per_audio_s"]
                                 / max(out["off"]["cpu_s_per_audio_s"], 1e-9), 3)
    return out


def attach_random_stage_one(bundle, seed: int = 0) -> None:
    """A stage one with random weights (its cost is a trained one's) on a random bundle."""
    import torch

    torch.manual_seed(seed)
    model = StageOne(StageOneConfig(num_labels=len(bundle.labels))).eval()
    model.requires_grad_(False)
    bundle.cascade = Cascade(CascadeSettings(True, STAGE_ONE_FILE, 0.5, 2), model,
                             len(bundle.keywords))


def cost_at_pattern(bundle, precision: str, cache: bool | None, trace: str, seconds: float,
                    repeats: int = 1) -> dict[str, Any]:
    """CPU-s per audio second of `bundle` when its stage one passes exactly the windows of
    `trace` ("1"/"0" per window, from a real bundle on real speech), on speech-like audio (the
    encoder's cost does not depend on the content; the pattern carries the real speech)."""
    from kwsd.model.bench import speech_like, stream_rtf

    if bundle.cascade is None:
        attach_random_stage_one(bundle)
    schedule = [c == "1" for c in trace] or [True]
    audio = speech_like(seconds + (bundle.window_samples + 2 * bundle.hop_samples) / 16000)
    cpu, rs = [], []
    for _ in range(max(1, repeats)):
        r = stream_rtf(bundle, precision, cache, audio, 1, cascade="on", schedule=schedule)
        cpu.append(r["cpu_rtf"])
        rs.append(r)
    return {"precision": precision, "cache_conv": cache,
            "pass_rate": rs[0]["pass_rate"],
            "cpu_s_per_audio_s": round(statistics.median(cpu), 4),
            "cpu_s_per_audio_s_runs": cpu,
            "per_part_ms_per_audio_s": rs[0]["per_part_ms_per_audio_s"]}


def interleave(named: list[tuple[str, np.ndarray]]) -> list[np.ndarray]:
    """Clips of the measurement audio's subsets (wuw-train callers, other speech) in turns, so
    that a short run (`--seconds 20`) holds both kinds in the measurement's proportions
    instead of the first subset only (stage one passes far more of the keyword callers)."""
    groups: dict[str, list[np.ndarray]] = {}
    for name, x in named:
        groups.setdefault(name.split("/", 1)[0], []).append(x)
    out, queues = [], [list(g) for g in groups.values()]
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out


def shipped_bundle_audio(bundle_path: Path, real_train: Path | None) -> tuple[list, dict]:
    """Real speech for a bundle's cascade bench (kwsd.evaluation.precision.measurement_audio),
    its subsets interleaved."""
    import sys

    from kwsd.evaluation.precision import DEFAULT_SECONDS, measurement_audio

    audio = measurement_audio(bundle_path, real_train, DEFAULT_SECONDS,
                              warn=lambda m: print(m, file=sys.stderr))
    desc = {k: v for k, v in audio.describe().items() if k != "files"}
    desc["files"] = len(audio.clips)
    desc["order"] = "subsets interleaved clip by clip"
    return interleave(audio.clips), desc
