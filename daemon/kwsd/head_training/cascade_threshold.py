"""Stage one's threshold: the cheapest one that costs at most a stated recall, measured live.

The measurement set is real-train's held-out speakers (the split `kwsd.corpus.real` uses:
WUW-II callers held out by speaker hash, and held-out other real speech), never real-dev.
Every file goes once through the daemon's own path (`Pipeline`: VAD gate, streaming
classifier, decision) with stage one scoring every window and the encoder running on all of
them, and each `accept` call's posteriors are recorded with stage one's score. Any threshold
and hold can then be replayed exactly: the same Pipeline runs again (same VAD gate, same
Decision) with a classifier that returns the recorded posteriors, replaced by the "no keyword"
posterior on the windows that threshold would reject. The replay is exact because the cascade
computes the passed windows exactly as the plain path does (cascade.py); the chosen threshold
is then checked by a real run with the cascade on.

The rule: the highest threshold (fewest windows through the encoder) such that it and every
lower candidate lose at most `max_recall_loss` of the plain path's recall at every threshold set
of the bundle (its defaults and each calibrated sensitivity) and raise no false alarms.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from kwsd.audio.chunk import SAMPLE_RATE
from kwsd.evaluation.manifest import EvalItem, read_eval_manifest

if TYPE_CHECKING:
    from kwsd.model.bundle import ModelBundle

log = logging.getLogger(__name__)

DEFAULT_MAX_RECALL_LOSS = 0.01
DEFAULT_HOLD_HOPS = 2
DEFAULT_SPEECH_SECONDS = 600.0


@dataclass
class MeasurementSet:
    items: list[EvalItem]
    audio: dict[str, np.ndarray]  # file -> 16 kHz int16
    describe: dict[str, Any]

    @property
    def seconds(self) -> float:
        return sum(len(x) for x in self.audio.values()) / SAMPLE_RATE


def heldout_set(real_train: Path, speech_seconds: float = DEFAULT_SPEECH_SECONDS
                ) -> MeasurementSet:
    """Held-out WUW-II callers (all their recordings) and held-out other real speech."""
    from kwsd.audio.audiofile import read_audio_16k
    from kwsd.corpus.real import SPEECH_VAL_PERCENT, WUW_VAL_PERCENT
    from kwsd.evaluation.precision import refuse_evaluation_data
    from kwsd.head_training.dataset import speaker_held_out

    refuse_evaluation_data(real_train)
    problems: list[str] = []
    wuw = [i for i in read_eval_manifest(real_train / "wuw-train.csv", problems)
           if speaker_held_out(i.extra.get("speaker", ""), WUW_VAL_PERCENT)]
    bad = {p.split(":")[0] for p in problems}
    speech = []
    with (real_train / "speech.csv").open(newline="", encoding="utf-8") as f:
        rows = sorted((r for r in csv.DictReader(f) if r.get("kind") == "speech"
                       and not r.get("keyword")), key=lambda r: r["file"])
    for r in rows:
        who = r.get("speaker") or r["file"]
        if speaker_held_out(who, SPEECH_VAL_PERCENT):
            speech.append(r)
    rng = np.random.default_rng(0)
    speech = [speech[i] for i in rng.permutation(len(speech))]
    items = list(wuw)
    audio: dict[str, np.ndarray] = {}
    for i in wuw:
        if i.file not in audio:
            audio[i.file] = read_audio_16k(i.path)
    got = 0.0
    for r in speech:
        if got >= speech_seconds:
            break
        x = read_audio_16k(real_train / r["file"])
        audio[r["file"]] = x
        got += len(x) / SAMPLE_RATE
        items.append(EvalItem(file=r["file"], path=real_train / r["file"], keyword="",
                              kw_start_s=None, kw_end_s=None, in_sentence=False,
                              transcription=r.get("text", "")))
    callers = sorted({i.extra.get("speaker", "") for i in wuw})
    describe = {"source": str(real_train), "split": "held-out speakers (kwsd.corpus.real: "
                f"WUW-II {WUW_VAL_PERCENT} %, other speech {SPEECH_VAL_PERCENT} %)",
                "wuw_callers": len(callers), "wuw_files": len({i.file for i in wuw}),
                "keywords_labelled": sum(1 for i in wuw if i.keyword),
                "speech_files": len(audio) - len({i.file for i in wuw}),
                "seconds": round(sum(len(x) for x in audio.values()) / SAMPLE_RATE, 1),
                "rows_left_out": len(problems)}
    if bad:
        log.info("%d manifest rows left out (broken labels)", len(problems))
    return MeasurementSet(items, audio, describe)


# -- one recording pass --------------------------------------------------------------------------

Call = list[tuple[int, int, np.ndarray, float]]  # one accept(): (start, end, probs, score)


@dataclass
class Recording:
    calls: dict[str, list[Call]] = field(default_factory=dict)
    cpu_s: float = 0.0


class _RecordingClassifier:
    """The real streaming classifier (encoder on every window) plus stage one's score."""

    def __init__(self, bundle: ModelBundle, precision: str | None) -> None:
        from kwsd.model.cascade import CascadeGate
        from kwsd.model.streaming import StreamingClassifier

        self.inner = StreamingClassifier(bundle, precision=precision, cascade=False)
        self.inner.gate = CascadeGate(bundle.cascade, threshold=None)  # score, pass all
        self.hop, self.precision = self.inner.hop, self.inner.precision
        self.calls: list[Call] = []
        scores: list[float] = []
        check = self.inner.gate.check

        def scoring_check(window):
            ok = check(window)
            scores.append(self.inner.gate.last_score)
            return ok

        self.inner.gate.check = scoring_check
        self._scores = scores

    def accept(self, samples: np.ndarray, start_sample: int):
        self._scores.clear()
        posts = self.inner.accept(samples, start_sample)
        self.calls.append([(p.start_sample, p.end_sample, p.probs, s)
                           for p, s in zip(posts, self._scores, strict=True)])
        return posts

    def reset(self) -> None:
        self.inner.reset()


def record(bundle: ModelBundle, mset: MeasurementSet, precision: str | None = None,
           progress: Callable[[str], None] | None = None) -> Recording:
    from kwsd.engine.pipeline import Pipeline, PipelineSettings

    out = Recording()
    c0 = time.process_time()
    settings = PipelineSettings(precision=precision or "")
    for n, (name, samples) in enumerate(mset.audio.items()):
        clf = _RecordingClassifier(bundle, precision)
        Pipeline(bundle, f"fit:{name}", settings, classifier=clf).run(samples)
        out.calls[name] = clf.calls
        if progress and n % 50 == 49:
            progress(f"recorded {n + 1}/{len(mset.audio)} files")
    out.cpu_s = time.process_time() - c0
    return out


# -- replay ----------------------------------------------------------------------------------

def pass_mask(calls: list[Call], hop: int, threshold: float | None, hold: int) -> list[list[bool]]:
    """Which windows the gate passes (CascadeGate's rule; a break in the window grid is a
    classifier reset, which resets the hold)."""
    out, left, prev = [], 0, None
    for call in calls:
        row = []
        for start, _, _, score in call:
            if prev is None or start != prev + hop:
                left = 0
            prev = start
            if threshold is None or score >= threshold:
                left, ok = hold, True
            elif left > 0:
                left, ok = left - 1, True
            else:
                ok = False
            row.append(ok)
        out.append(row)
    return out


class _ReplayClassifier:
    def __init__(self, calls: list[Call], mask: list[list[bool]], rejected: np.ndarray,
                 hop: int, precision: str) -> None:
        from kwsd.model.streaming import Posterior

        self._out = iter([[Posterior(s, e, p if ok else rejected)
                           for (s, e, p, _), ok in zip(call, m, strict=True)]
                          for call, m in zip(calls, mask, strict=True)])
        self.hop, self.precision = hop, precision

    def accept(self, samples: np.ndarray, start_sample: int):
        return next(self._out)

    def reset(self) -> None:
        pass


@dataclass
class Outcome:
    recall: float | None
    hits: int
    positives: int
    false_alarms: int
    windows: int
    passed: int
    detections: list = field(default_factory=list)

    @property
    def pass_rate(self) -> float:
        return self.passed / self.windows if self.windows else 0.0


def replay(bundle: ModelBundle, mset: MeasurementSet, rec: Recording, threshold: float | None,
           hold: int, sensitivity: str = "") -> Outcome:
    """Detections and score of the measurement set at one stage-one threshold (None = plain)."""
    from kwsd.config import DecisionConfig
    from kwsd.engine.pipeline import Pipeline, PipelineSettings
    from kwsd.evaluation.runner import run_samples
    from kwsd.evaluation.scoring import score
    from kwsd.model.cascade import no_keyword_probs

    rejected = no_keyword_probs(list(bundle.labels))
    settings = PipelineSettings(decision=DecisionConfig(sensitivity=sensitivity))
    hop = int(bundle.hop_samples)
    dets, windows, passed = [], 0, 0
    for name, samples in mset.audio.items():
        calls = rec.calls[name]
        mask = pass_mask(calls, hop, threshold, hold)
        windows += sum(len(m) for m in mask)
        passed += sum(sum(m) for m in mask)

        def make(b, source_id, s, _c=calls, _m=mask):
            return Pipeline(b, source_id, s,
                            classifier=_ReplayClassifier(_c, _m, rejected, hop, ""))

        dets += run_samples(bundle, samples, name, settings, make_pipeline=make).detections
    durations = {k: len(v) / SAMPLE_RATE for k, v in mset.audio.items()}
    result = score(mset.items, dets, durations, list(bundle.keywords))
    hits = sum(s.alone_hits + s.sentence_hits for s in result.per_keyword.values())
    pos = sum(s.alone + s.sentence for s in result.per_keyword.values())
    return Outcome(result.recall(), hits, pos, result.false_alarms, windows, passed,
                   sorted((d.file, d.keyword, round(d.start_s, 3)) for d in dets))


# -- the choice ------------------------------------------------------------------------------

def candidate_thresholds(rec: Recording, count: int = 48) -> list[float]:
    """Stage-one scores at pass fractions (before the hold) from 80 % down to 0.5 %, evenly
    spaced in log: fine steps where the pass rate is low and each step matters. Ascending."""
    scores = np.array([w[3] for calls in rec.calls.values() for c in calls for w in c])
    if not len(scores):
        return [0.5]
    qs = np.quantile(scores, 1 - np.geomspace(0.8, 0.005, count))
    return sorted({round(float(q), 6) for q in qs})


def choose_threshold(bundle: ModelBundle, mset: MeasurementSet, rec: Recording, *,
                     hold: int = DEFAULT_HOLD_HOPS,
                     max_recall_loss: float = DEFAULT_MAX_RECALL_LOSS,
                     progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    from kwsd.evaluation.precision import threshold_sets

    say = progress or (lambda msg: None)
    sets = threshold_sets(bundle)
    plain = {name: replay(bundle, mset, rec, None, hold, level) for name, level in sets.items()}
    say("plain path: " + ", ".join(f"{n} recall {o.recall:.4f} ({o.hits}/{o.positives}), "
                                   f"{o.false_alarms} false alarms" for n, o in plain.items()))
    chosen, table = None, []
    for thr in candidate_thresholds(rec):
        outs = {name: replay(bundle, mset, rec, thr, hold, level)
                for name, level in sets.items()}
        ok = all((plain[n].recall or 0) - (o.recall or 0) <= max_recall_loss + 1e-9
                 and o.false_alarms <= plain[n].false_alarms for n, o in outs.items())
        first = next(iter(outs.values()))
        row = {"threshold": thr, "pass_rate": round(first.pass_rate, 4), "ok": ok,
               **{f"recall_loss_{n}": round((plain[n].recall or 0) - (o.recall or 0), 4)
                  for n, o in outs.items()},
               **{f"false_alarms_{n}": o.false_alarms for n, o in outs.items()}}
        table.append(row)
        say(f"threshold {thr:.4g}: pass rate {row['pass_rate']:.3f}, " + ", ".join(
            f"{n} loss {row[f'recall_loss_{n}']:+.4f} fa {row[f'false_alarms_{n}']}"
            for n in outs) + ("" if ok else "  <- over the limit"))
        if not ok:
            break
        chosen = (thr, outs)
    if chosen is None:
        raise RuntimeError("no stage-one threshold keeps the recall loss within "
                           f"{max_recall_loss}: stage one misses keywords the encoder finds "
                           "even when it passes most windows (retrain it)")
    thr, outs = chosen
    return {
        "threshold": thr, "hold_hops": hold, "max_recall_loss": max_recall_loss,
        "threshold_sets": list(sets),
        "plain": {n: {"recall": o.recall, "hits": o.hits, "positives": o.positives,
                      "false_alarms": o.false_alarms} for n, o in plain.items()},
        "cascade": {n: {"recall": o.recall, "hits": o.hits, "positives": o.positives,
                        "false_alarms": o.false_alarms, "pass_rate": round(o.pass_rate, 4)}
                    for n, o in outs.items()},
        "recall_loss": {n: round((plain[n].recall or 0) - (o.recall or 0), 4)
                        for n, o in outs.items()},
        "pass_rate_heldout": round(next(iter(outs.values())).pass_rate, 4),
        "windows": next(iter(outs.values())).windows,
        "candidates": table,
        "detections": {n: o.detections for n, o in outs.items()},
    }


def verify(bundle: ModelBundle, mset: MeasurementSet, choice: dict[str, Any]) -> dict[str, Any]:
    """Run the measurement set with the cascade really on (bundle.cascade at the chosen
    threshold) and compare the detections with the replay's."""
    from kwsd.config import DecisionConfig
    from kwsd.engine.pipeline import Pipeline, PipelineSettings
    from kwsd.evaluation.precision import threshold_sets
    from kwsd.evaluation.runner import run_samples
    from kwsd.model.streaming import StreamingClassifier

    out: dict[str, Any] = {}
    for name, level in threshold_sets(bundle).items():
        settings = PipelineSettings(decision=DecisionConfig(sensitivity=level))
        dets = []
        for file, samples in mset.audio.items():
            def make(b, source_id, s):
                return Pipeline(b, source_id, s,
                                classifier=StreamingClassifier(b, cascade="on"))

            dets += [(d.file, d.keyword, round(d.start_s, 3))
                     for d in run_samples(bundle, samples, file, settings,
                                          make_pipeline=make).detections]
        want = [tuple(d) for d in choice["detections"][name]]
        out[name] = {"same_detections_as_replay": sorted(dets) == sorted(want),
                     "detections": len(dets)}
    return out


def speech_pass_rate(bundle: ModelBundle, bundle_path: Path, real_train: Path | None
                     ) -> dict[str, Any]:
    """Stage one's pass rate (hold included) on the real speech `kwsd bench --bundle` streams
    (kwsd.evaluation.precision.measurement_audio, end to end, no VAD gate: all speech)."""
    import torch

    from kwsd.evaluation.precision import DEFAULT_SECONDS, measurement_audio
    from kwsd.model.cascade import CascadeGate

    audio = measurement_audio(bundle_path, real_train, DEFAULT_SECONDS,
                              warn=lambda msg: log.warning("%s", msg))
    joined = np.concatenate([x for _, x in audio.clips]).astype(np.float32) / 32768.0
    gate = CascadeGate(bundle.cascade)
    w, hop = int(bundle.window_samples), int(bundle.hop_samples)
    mask = []
    with torch.inference_mode():
        for start in range(0, len(joined) - w + 1, hop):
            mask.append(gate.check(torch.from_numpy(joined[start:start + w])))
    return {"pass_rate": round(gate.pass_rate, 4), "windows": gate.windows,
            "audio": {k: v for k, v in audio.describe().items() if k != "files"},
            "mask": "".join("1" if m else "0" for m in mask)}


def record_cascade(bundle_path: Path, choice: dict[str, Any], check: dict[str, Any],
                   speech: dict[str, Any], mset: dict[str, Any], fit_info: dict[str, Any], *,
                   enabled: bool, command: str, seconds: float) -> Path:
    """Write kws.json `streaming.cascade`; everything else in kws.json stays as it was."""
    import json

    from kwsd.model.bundle import META_FILE, write_meta
    from kwsd.model.cascade import STAGE_ONE_FILE, STAGE_ONE_TYPE

    meta = json.loads((bundle_path / META_FILE).read_text(encoding="utf-8"))
    streaming = dict(meta.get("streaming") or {})
    streaming["cascade"] = {
        "enabled": enabled,
        "stage_one": STAGE_ONE_FILE,
        "stage_one_type": STAGE_ONE_TYPE,
        "threshold": choice["threshold"],
        "hold_hops": choice["hold_hops"],
        "pass_rate_real_speech": speech["pass_rate"],
        "pass_rate_heldout": choice["pass_rate_heldout"],
        "recall_loss": choice["recall_loss"],
        "max_recall_loss": choice["max_recall_loss"],
        "rule": ("highest stage-one threshold such that it and every lower candidate lose at "
                 "most max_recall_loss of the plain path's recall and add no false alarm at "
                 "every threshold set, on real-train's held-out speakers through the daemon's "
                 "path (replayed exactly, then checked with the cascade on)"),
        "measurement_set": mset,
        "plain": choice["plain"],
        "cascade": choice["cascade"],
        "check": check,
        "pass_rate_audio": speech["audio"],
        "pass_mask_real_speech": speech["mask"],
        "candidates": choice["candidates"],
        "holds_tried": choice.get("holds_tried", {}),
        "fit": fit_info,
        "command": command,
        "fit_seconds": round(seconds, 1),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    meta["streaming"] = streaming
    return write_meta(bundle_path, meta)
