"""Which encoder precision a bundle runs: measured on real speech, recorded in its kws.json.

`kwsd bench --bundle DIR --choose` (and `kwsd train --choose-precision`) runs every precision
the streaming code supports (kwsd.model.precision) over the same recordings and picks the
fastest one whose decisions match fp32's:

- decisions: each recording goes through the daemon's own path (`run_samples`: VAD gate,
  streaming classifier, decision), once per precision and per threshold set of the bundle
  (its default thresholds and each calibrated sensitivity). A precision qualifies only if it
  reports the detections fp32 reports (recording, keyword, start; an end may differ by one
  hop: the decision fired a window later or earlier) at every threshold set, and if the largest
  difference of its posteriors from fp32's (every label, every window the gate let through)
  stays within a stated bound;
- speed: process CPU seconds per audio second at one torch thread (the daemon's default),
  streaming continuous speech through the classifier (kwsd.model.bench.stream_rtf), in rounds
  that run every precision back to back; what counts is the median over the rounds of each
  precision's time divided by fp32's in the same round (the machine's drift between rounds
  cancels out). Speed depends on the CPU (bf16 needs AVX-512 BF16 or AMX to be fast): choose
  on the kind of machine the daemon will run on; the record names the CPU.

The recordings are real speech that may be used for choosing: `../shared/data/real-train`
(WUW-II callers saying the demo keywords alone and in sentences, other real speech). Never the
evaluation set `real-dev`. Without real-train (a lone clone), the bundle's demo.wav or synthetic
speech-like audio is used instead, and the record says so.
"""

from __future__ import annotations

import csv
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kwsd.model.precision import DEFAULT_PRECISION, PRECISIONS

if TYPE_CHECKING:
    from kwsd.model.bundle import ModelBundle

DEFAULT_REAL_TRAIN = Path("../shared/data/real-train")
DEFAULT_SECONDS = 180.0  # decision comparison: a few minutes of real speech
MAX_POSTERIOR_DIFF = 0.02
"""A precision qualifies only if none of its posteriors (any label, any window the gate let
through) is further than this from fp32's. Detections are compared directly; the bound also
keeps out a precision whose decisions happen to agree on the measurement set although its
scores move far enough to flip decisions near a threshold elsewhere. Measured on the demo
model and real-train speech: bf16 convs and layers move posteriors by up to 0.01, int8 Linear
layers by up to 0.04 (0.009 where fp32's keyword posterior is above 0.8)."""


class PrecisionChoiceError(ValueError):
    """Measurement audio that may not or cannot be used; the message says why."""


@dataclass
class MeasurementAudio:
    """The recordings the choice is measured on: (name, 16 kHz int16 samples) each."""

    clips: list[tuple[str, np.ndarray]]
    source: str  # "real-train", "demo.wav" or "synthetic"
    note: str = ""  # why a fallback was used
    parts: dict[str, float] = field(default_factory=dict)  # seconds per subset

    @property
    def seconds(self) -> float:
        return sum(len(x) for _, x in self.clips) / 16000

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"source": self.source, "seconds": round(self.seconds, 1),
                               "files": [name for name, _ in self.clips]}
        if self.parts:
            out["seconds_by_set"] = {k: round(v, 1) for k, v in self.parts.items()}
        if self.note:
            out["note"] = self.note
        return out


def refuse_evaluation_data(path: Path) -> None:
    if "real-dev" in path.resolve().parts or "real-dev" in path.parts:
        raise PrecisionChoiceError(f"{path}: real-dev is evaluation-only and may not be used to "
                                   "choose anything; use real-train (or omit it for synthetic "
                                   "speech)")


def _seconds(rows: list[dict]) -> float:
    return sum(float(r.get("duration_s") or 0.0) for r in rows)


def _spread(rows: list[dict], group: str, seconds: float, whole: bool) -> list[dict]:
    """Rows spread over the values of `group` (callers, sources) in a fixed shuffled order,
    until `seconds` of audio (by the manifest's duration_s). `whole`: all of one group's rows
    at a time (a caller's name, each keyword alone and in a sentence); else round-robin."""
    groups: dict[str, list[dict]] = {}
    for r in sorted(rows, key=lambda r: r["file"]):
        groups.setdefault(r[group], []).append(r)
    order = sorted(groups)
    random.Random(0).shuffle(order)
    out: list[dict] = []
    if whole:
        for g in order:
            if _seconds(out) >= seconds:
                break
            out += groups[g]
        return out
    rng = random.Random(1)
    queues = [rng.sample(groups[g], len(groups[g])) for g in order]  # varied within a source
    while _seconds(out) < seconds and any(queues):
        for q in queues:
            if q and _seconds(out) < seconds:
                out.append(q.pop(0))
    return out


def real_train_audio(root: Path, seconds: float = DEFAULT_SECONDS) -> MeasurementAudio:
    """About `seconds` of real-train: half WUW-II callers (whole callers: their name, each
    keyword alone and in a sentence), half other real speech spread over its sources."""
    from kwsd.audio.audiofile import read_audio_16k

    refuse_evaluation_data(root)
    clips, parts = [], {}
    for name, group, whole in (("wuw-train", "speaker", True), ("speech", "source", False)):
        manifest = root / f"{name}.csv"
        if not manifest.is_file():
            raise PrecisionChoiceError(f"{manifest}: missing (real-train has wuw-train.csv and "
                                       "speech.csv)")
        with manifest.open(newline="", encoding="utf-8") as f:
            rows = [r for r in csv.DictReader(f) if r.get("kind", "speech") == "speech"]
        for r in rows:
            r["source"] = r["file"].split("/")[1] if r["file"].count("/") > 1 else ""
        got = 0.0
        for r in _spread(rows, group, seconds / 2, whole):
            samples = read_audio_16k(root / r["file"])
            clips.append((r["file"], samples))
            got += len(samples) / 16000
        parts[name] = got
    return MeasurementAudio(clips, "real-train", parts=parts)


def measurement_audio(bundle_path: Path, real_train: Path | None = DEFAULT_REAL_TRAIN,
                      seconds: float = DEFAULT_SECONDS, warn=print) -> MeasurementAudio:
    """real-train when it is there; else the bundle's demo.wav; else synthetic speech-like
    audio. Every fallback is announced through `warn` and recorded."""
    if real_train is not None:
        refuse_evaluation_data(real_train)
        if real_train.is_dir():
            return real_train_audio(real_train, seconds)
        why = f"{real_train} not found"
    else:
        why = "no real-train folder given"
    demo = bundle_path / "demo.wav"
    if demo.is_file():
        from kwsd.audio.audiofile import read_audio_16k

        note = (f"{why}: measured on the bundle's demo.wav instead (one recording; real "
                "speech from real-train is the better measurement)")
        warn(f"kwsd bench: {note}")
        return MeasurementAudio([("demo.wav", read_audio_16k(demo))], "demo.wav", note)
    from kwsd.model.bench import speech_like

    note = (f"{why} and the bundle has no demo.wav: measured on synthetic speech-like audio "
            "(no keywords: detections cannot be compared; real-train is the better measurement)")
    warn(f"kwsd bench: {note}")
    return MeasurementAudio([("synthetic", speech_like(min(seconds, 30.0), seed=2))],
                            "synthetic", note)


# -- decisions ---------------------------------------------------------------------------------

def threshold_sets(bundle: ModelBundle) -> dict[str, str]:
    """name -> decision.sensitivity for every distinct set of thresholds the bundle has:
    its defaults ("" ) and each calibrated sensitivity that differs from them."""
    from kwsd.engine.decision import sensitivity_table, sensitivity_thresholds

    out: dict[str, str] = {"default": ""}
    seen = [sensitivity_thresholds(bundle, "")]
    for level in sensitivity_table(bundle.meta):
        t = sensitivity_thresholds(bundle, level)
        if t not in seen:
            seen.append(t)
            out[level] = level
    return out


@dataclass
class DecisionRun:
    detections: dict[str, list[tuple]]  # threshold set -> [(file, keyword, start_s, end_s)]
    confidences: dict[str, list[float]]
    windows: list[tuple[str, int, int]]  # every gated window (file, start, end)
    posteriors: np.ndarray  # [windows, labels]
    cpu_s: float


def run_decisions(bundle: ModelBundle, precision: str, audio: MeasurementAudio,
                  sets: dict[str, str]) -> DecisionRun:
    """Every clip through the daemon's own path (`kwsd eval`'s runner) at each threshold set;
    the raw posteriors of every window the gate let through, at the first set."""
    from kwsd.config import DecisionConfig
    from kwsd.engine.pipeline import Pipeline, PipelineSettings
    from kwsd.evaluation.runner import run_samples

    rows: list[tuple[str, int, int, np.ndarray]] = []
    detections: dict[str, list[tuple]] = {}
    confidences: dict[str, list[float]] = {}
    c0 = time.process_time()
    for i, (set_name, sensitivity) in enumerate(sets.items()):
        # cascade off: precisions are compared on every window (the cascade would hide all
        # the windows its stage one rejects); kwsd bench measures the cascade separately
        settings = PipelineSettings(decision=DecisionConfig(sensitivity=sensitivity),
                                    precision=precision, cascade="off")
        dets, confs = [], []
        for name, samples in audio.clips:
            def make(b, source_id, s, _name=name, _record=(i == 0)):
                p = Pipeline(b, source_id, s)
                if _record:
                    update = p.decision.update

                    def recording_update(start, end, probs):
                        rows.append((_name, int(start), int(end), np.array(probs, np.float32)))
                        return update(start, end, probs)

                    p.decision.update = recording_update
                return p

            result = run_samples(bundle, samples, name, settings, make_pipeline=make)
            for d in result.detections:
                dets.append((name, d.keyword, round(d.start_s, 4), round(d.end_s, 4)))
                confs.append(float(d.confidence))
        detections[set_name], confidences[set_name] = dets, confs
    labels = len(bundle.labels)
    post = np.stack([r[3] for r in rows]) if rows else np.zeros((0, labels), np.float32)
    return DecisionRun(detections, confidences, [(r[0], r[1], r[2]) for r in rows], post,
                       time.process_time() - c0)


# -- the choice --------------------------------------------------------------------------------

def same_detections(run: list[tuple], ref: list[tuple], hop_s: float) -> tuple[bool, int]:
    """Whether `run` reports fp32's detections (`ref`): the same (recording, keyword, start)
    each, an end at most one hop apart. Posteriors within the bound can move a firing by a hop
    near a threshold: a hop of latency, not another detection. Returns (same, shifted ends)."""
    def by_start(dets):
        out: dict[tuple, list[float]] = {}
        for name, keyword, start, end in dets:
            out.setdefault((name, keyword, start), []).append(end)
        return {k: sorted(v) for k, v in out.items()}

    mine, theirs = by_start(run), by_start(ref)
    if mine.keys() != theirs.keys() or any(len(mine[k]) != len(theirs[k]) for k in mine):
        return False, 0
    gaps = [abs(a - b) for k in mine for a, b in zip(mine[k], theirs[k], strict=True)]
    if any(g > hop_s + 1e-6 for g in gaps):
        return False, 0
    return True, sum(g > 1e-6 for g in gaps)


def _speed_audio(audio: MeasurementAudio, seconds: float, warm_samples: int) -> np.ndarray:
    """Continuous speech for the speed runs: the clips end to end (repeated if short)."""
    joined = np.concatenate([x for _, x in audio.clips])
    need = int(seconds * 16000) + warm_samples
    reps = -(-need // max(1, len(joined)))
    return np.tile(joined, reps)[:need]


def _machine() -> dict[str, Any]:
    import platform

    import torch

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
            "loadavg": [round(x, 2) for x in os.getloadavg()]}


def choose_precision(bundle: ModelBundle, audio: MeasurementAudio, *,
                     speed_seconds: float = 4.0, repeats: int = 3,
                     bound: float = MAX_POSTERIOR_DIFF,
                     precisions: Sequence[str] = tuple(PRECISIONS),
                     progress=None) -> dict[str, Any]:
    """Measure every precision and pick one (see the module docstring). Returns the record
    that `record_choice` writes into kws.json `streaming.precision_choice`."""
    import torch

    from kwsd.model.bench import stream_rtf

    unknown = sorted(set(precisions) - set(PRECISIONS))
    if unknown:
        raise ValueError(f"unknown precisions {unknown}; one of {', '.join(PRECISIONS)}")
    precisions = [DEFAULT_PRECISION, *[p for p in precisions if p != DEFAULT_PRECISION]]
    say = progress or (lambda msg: None)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sets = threshold_sets(bundle)
        runs: dict[str, DecisionRun] = {}
        for p in precisions:
            say(f"decisions: {p} on {audio.seconds:.0f} s, threshold sets {', '.join(sets)}")
            runs[p] = run_decisions(bundle, p, audio, sets)
        warm = int(bundle.window_samples + 2 * bundle.hop_samples)
        speech = _speed_audio(audio, speed_seconds, warm)
        cpu: dict[str, list[float]] = {p: [] for p in precisions}
        for r in range(repeats):
            k = r % len(precisions)  # interleaved, rotated: machine drift spreads evenly
            for p in precisions[k:] + precisions[:k]:
                cpu[p].append(stream_rtf(bundle, p, None, speech, 1, cascade="off")["cpu_rtf"])
            say(f"speed: round {r + 1}/{repeats} done")
    finally:
        torch.set_num_threads(threads)
    ref = runs[DEFAULT_PRECISION]
    hop_s = bundle.hop_samples / bundle.sample_rate
    table: dict[str, Any] = {}
    for p in precisions:
        run = runs[p]
        if run.windows != ref.windows:  # the gate does not depend on the precision
            raise RuntimeError(f"{p}: the gate passed other windows than with fp32")
        diff = float(np.abs(run.posteriors - ref.posteriors).max()) if len(ref.windows) else 0.0
        compared = [same_detections(run.detections[s], ref.detections[s], hop_s) for s in sets]
        same = all(ok for ok, _ in compared)
        shifted = sum(n for _, n in compared)
        conf = (max((abs(a - b) for s in sets for a, b in
                     zip(run.confidences[s], ref.confidences[s], strict=True)), default=0.0)
                if same else None)
        med = statistics.median(cpu[p])
        # Paired with the fp32 run of the same round (back to back): the machine's drift
        # between rounds cancels out of the ratio.
        ratio = statistics.median(a / b for a, b in zip(cpu[p], cpu[DEFAULT_PRECISION],
                                                         strict=True))
        table[p] = {
            "cpu_s_per_audio_s": round(med, 4),
            "cpu_s_per_audio_s_runs": [round(x, 4) for x in cpu[p]],
            "vs_fp32": round(ratio, 3),
            "max_abs_posterior_diff": float(f"{diff:.3g}"),
            "max_confidence_diff": None if conf is None else float(f"{conf:.3g}"),
            "detections": {s: len(d) for s, d in run.detections.items()},
            "same_detections": same,
            "shifted_detections": shifted,  # same detection, end one hop apart
            "qualifies": same and diff <= bound,
        }
    chosen = min((p for p in precisions if table[p]["qualifies"]),
                 key=lambda p: (table[p]["vs_fp32"], table[p]["cpu_s_per_audio_s"]))
    return {
        "chosen": chosen,
        "rule": ("fastest precision (median over the rounds of its process CPU time per "
                 "audio second divided by fp32's in the same round, 1 torch thread, continuous "
                 "speech) whose detections are fp32's at every threshold set (the same "
                 "recording, keyword and start; an end at most one hop apart, counted in "
                 "shifted_detections) and whose posteriors stay within "
                 "max_abs_posterior_diff_bound of fp32's on every window the VAD gate let "
                 "through"),
        "max_abs_posterior_diff_bound": bound,
        "threshold_sets": list(sets),
        "windows_compared": len(ref.windows),
        "audio": audio.describe(),
        "speed": {"seconds_per_run": speed_seconds, "runs": repeats, "torch_threads": 1,
                  "audio": "the measurement audio end to end"},
        "cache_conv": _cache_conv(bundle),
        "precisions": table,
        "machine": _machine(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _cache_conv(bundle: ModelBundle) -> bool:
    from kwsd.model.streaming import StreamingClassifier

    return StreamingClassifier(bundle, precision=DEFAULT_PRECISION).cache_conv


def record_choice(bundle_path: Path, choice: dict[str, Any], command: str = "") -> Path:
    """Write `streaming.precision` (the chosen one) and `streaming.precision_choice` (what was
    measured) into the bundle's kws.json; everything else in it stays as it was."""
    from kwsd.model.bundle import META_FILE, write_meta

    meta = json.loads((bundle_path / META_FILE).read_text(encoding="utf-8"))
    streaming = dict(meta.get("streaming") or {})
    streaming["precision"] = choice["chosen"]
    streaming["precision_choice"] = {**choice, **({"command": command} if command else {})}
    meta["streaming"] = streaming
    return write_meta(bundle_path, meta)


def format_choice(choice: dict[str, Any]) -> str:
    """The measurements as a table, for people."""
    a, s = choice["audio"], choice["speed"]
    sets = choice["threshold_sets"]
    lines = [
        f"decisions on {a['seconds']} s of {a['source']} ({len(a['files'])} files, "
        f"{choice['windows_compared']} windows through the gate; threshold sets: "
        f"{', '.join(sets)}); speed: {s['runs']} x {s['seconds_per_run']} s of continuous "
        f"speech, 1 thread; load average {choice['machine']['loadavg'][0]}",
        f"  {'precision':16} {'CPU-s/audio-s':>13} {'vs fp32':>7} {'max |dposterior|':>16}  "
        f"{'detections (' + '/'.join(sets) + ')':28} same  ok",
    ]
    for p, r in choice["precisions"].items():
        mark = "*" if p == choice["chosen"] else " "
        dets = "/".join(str(r["detections"][x]) for x in sets)
        shifted = r.get("shifted_detections", 0)
        same = ("NO" if not r["same_detections"] else
                f"yes ({shifted} a hop apart)" if shifted else "yes")
        lines.append(f" {mark}{p:16} {r['cpu_s_per_audio_s']:13.4f} {r['vs_fp32']:7.3f} "
                     f"{r['max_abs_posterior_diff']:16.2e}  {dets:28} "
                     f"{same:4} {'yes' if r['qualifies'] else 'no'}")
    lines.append(f"chosen: {choice['chosen']} (fastest whose detections are fp32's, an end at "
                 f"most one hop apart, and whose posteriors stay within "
                 f"{choice['max_abs_posterior_diff_bound']} of fp32's)")
    return "\n".join(lines)


def choose_for_bundle(bundle_path: Path, *, real_train: Path | None = DEFAULT_REAL_TRAIN,
                      seconds: float = DEFAULT_SECONDS, speed_seconds: float = 4.0,
                      repeats: int = 3, bound: float = MAX_POSTERIOR_DIFF, write: bool = False,
                      command: str = "", log=None) -> dict[str, Any]:
    """Load a bundle, measure, and (with `write`) record the choice in its kws.json."""
    from kwsd.model.bundle import load_bundle

    say = log or (lambda msg: print(msg, file=sys.stderr))
    audio = measurement_audio(bundle_path, real_train, seconds, warn=say)
    bundle = load_bundle(bundle_path)
    choice = choose_precision(bundle, audio, speed_seconds=speed_seconds, repeats=repeats,
                              bound=bound, progress=say)
    if write:
        record_choice(bundle_path, choice, command)
    return choice
