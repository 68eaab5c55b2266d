"""Examples in, an enrolled keyword (or the reasons it cannot be made) out."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from kwsd.config import DecisionConfig
from kwsd.engine.decision import model_decision
from kwsd.enrollment import checks, features, negatives
from kwsd.enrollment.detector import EnrolledKeyword, EnrolledSet
from kwsd.enrollment.recording import decision_scores, window_scores
from kwsd.enrollment.trim import speech_span

if TYPE_CHECKING:
    from kwsd.model.bundle import ModelBundle

# False alarms per hour of the bank's speech, for a bundle whose kws.json names none
# (`enrollment.fa_target_per_h` and `fa_target_per_h_one_example`, chosen per encoder by
# scripts/eval-enroll.py --select ... --choose-from).
# Speech from the examples' own channel fires more often than the bank's mixed channels: with
# kwsd-demo-8's encoder, 0.2 gave 0.5 (3 examples) and 1.1 (1 example) false alarms per hour per
# keyword on real-train callers' telephone speech and under 0.2 on 2.6 h of its other speech;
# 1.0 gave 2.8 and 4.0 (docs/TEAM-NOTES.md, session 11).
DEFAULT_FA_PER_H = 0.2


def default_fa_target(bundle: ModelBundle, examples: int = 3) -> float:
    """The false-alarm target an enrollment gets when none is asked for: the bundle's own
    (the right bank target differs between encoders, and one example's templates fire
    differently from several's: `fa_target_per_h_one_example`), else DEFAULT_FA_PER_H."""
    chosen = bundle.meta.get("enrollment", {})
    many = float(chosen.get("fa_target_per_h", DEFAULT_FA_PER_H))
    return float(chosen.get("fa_target_per_h_one_example", many)) if examples == 1 else many


class EnrollmentError(ValueError):
    """Enrollment refused; the message says why (bad name, unusable examples, ...)."""


@dataclass
class EnrollResult:
    keyword: EnrolledKeyword | None
    checks: list[checks.ExampleCheck]
    seconds: float = 0.0
    calibration: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.keyword is not None


def build_templates(bundle: ModelBundle, examples: list[np.ndarray],
                    spans: list[tuple[int, int]]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(template frames, whole-window frames) per example and phrase span."""
    from kwsd.model.streaming import StreamingClassifier

    classifier = StreamingClassifier(bundle)
    temps, wins = [], []
    for x, span in zip(examples, spans, strict=True):
        t, w = features.template(classifier, x, span)
        temps.append(t)
        wins.append(w)
    return temps, wins


def enroll(bundle: ModelBundle, name: str, examples: list[np.ndarray], *,
           fa_target_per_h: float | None = None, bank=None, settings=None,
           min_examples: int = 1, check_alike: bool = True) -> EnrollResult:
    """Trim and check each example (int16 16 kHz), make templates, calibrate the threshold
    (for `fa_target_per_h`, else the bundle's default target).

    `check_alike=False` skips the "unlike the others" check: renderings by different
    synthetic voices (`--text`) differ by design; the check is for a person's recordings."""
    t0 = time.perf_counter()
    target_from = "model" if fa_target_per_h is None else "request"  # --again keeps a request
    if fa_target_per_h is None:
        fa_target_per_h = default_fa_target(bundle, len(examples))
    if len(examples) < min_examples:
        raise EnrollmentError(f"{len(examples)} example(s) given, at least {min_examples} needed")
    max_s = bundle.window_samples / bundle.sample_rate
    examples = [np.asarray(x, dtype=np.int16) for x in examples]
    spans = [speech_span(x, int(max_s * bundle.sample_rate)) for x in examples]
    phrases = [x[a:b] for x, (a, b) in zip(examples, spans, strict=True)]
    results = [checks.check_audio(i, x, p, max_s)
               for i, (x, p) in enumerate(zip(examples, phrases, strict=True))]
    if any(not c.ok for c in results):
        return EnrollResult(None, results, time.perf_counter() - t0)
    temps, wins = build_templates(bundle, examples, spans)
    for i, why in (checks.unlike_others(temps, wins) if check_alike else {}).items():
        results[i].problems.append(why)
    if any(not c.ok for c in results):
        return EnrollResult(None, results, time.perf_counter() - t0)
    kw = EnrolledKeyword(name=name, templates=temps, threshold=0.5,
                         encoder_id=features.encoder_id(bundle), fa_target_per_h=fa_target_per_h)
    calibration = calibrate_keyword(bundle, kw, fa_target_per_h, bank, settings)
    kw.threshold = calibration["threshold"]
    kw.info = {"calibration": calibration, "fa_target_from": target_from,
               "examples": [{"duration_s": round(c.duration_s, 3),
                             "level_dbfs": round(c.level_dbfs, 1)} for c in results]}
    return EnrollResult(kw, results, time.perf_counter() - t0, calibration)


def bank_scores(bundle: ModelBundle, kw: EnrolledKeyword, bank=None, settings=None
                ) -> tuple[list[np.ndarray], list]:
    """(the scores the daemon's decision compares on each bank stream, the streams): the
    expensive part of a calibration, the same for every false-alarm target."""
    records = negatives.bank_records(bundle, bank, settings)
    one = EnrolledSet([kw])
    config = model_decision(bundle, DecisionConfig())   # what the daemon will compare
    scores = [decision_scores(r, one.names, window_scores(r, one), config)[:, 0]
              for r in records]
    return scores, records


def calibrate_keyword(bundle: ModelBundle, kw: EnrolledKeyword, fa_target_per_h: float,
                      bank=None, settings=None) -> dict:
    return negatives.calibrate(*bank_scores(bundle, kw, bank, settings), fa_target_per_h)
