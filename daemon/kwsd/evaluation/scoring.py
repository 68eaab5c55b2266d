"""Scoring detections against a manifest: recall, false alarms per hour, confusions, DET curves.

Pure functions over plain data so that the counting rules can be tested with hand-made cases:
- a detection is a hit when its keyword is the labelled one and it overlaps the labelled span
  widened by `tolerance_s` on both sides; a second one on the same span is a duplicate;
- a detection of a keyword that the transcription contains more often than it is labelled is a
  true (unlabelled) detection, not a false alarm (real-dev README);
- every other detection is a false alarm; one inside the span of another keyword is also a
  confusion. False alarms per hour divide by the audio outside the widened labelled spans.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from kwsd.evaluation.manifest import EvalItem, count_keyword
from kwsd.events import round_score

# The thresholds DET curves are read at (and calibration chooses from): steps of 0.001, and of
# 0.0001 above 0.99: a head trained on real speech is confident on some real negatives too
# (kwsd-demo-5's calibration still counted false alarms at 0.995 for three keywords), so the
# grid must reach where such a head separates them. Above 0.9999 it goes on in steps of 10^0.1
# in 1 - p down to 1 - 1e-6: a real negative can fire at 1 - 5e-5 with most keyword clips above
# it (session 29), and float32 scores still tell 1 - 1e-6 from 1.
_NEAR_ONE = 1.0 - np.logspace(-4, -6, 21)
THRESHOLD_GRID = np.unique([round_score(t) for t in np.concatenate([
    np.linspace(0.0, 1.0, 1001), np.linspace(0.99, 0.9999, 100), _NEAR_ONE])])

NONE_LABEL = "(none)"
MISSED_LABEL = "(missed)"


@dataclass(frozen=True)
class Detection:
    file: str
    keyword: str
    confidence: float
    start_s: float
    end_s: float

    def to_dict(self) -> dict:
        return {"file": self.file, "keyword": self.keyword,
                "confidence": round_score(self.confidence),
                "start_s": round(float(self.start_s), 3), "end_s": round(float(self.end_s), 3)}


@dataclass
class KeywordStats:
    alone: int = 0
    alone_hits: int = 0
    sentence: int = 0
    sentence_hits: int = 0
    false_alarms: int = 0

    @property
    def recall_alone(self) -> float | None:
        return self.alone_hits / self.alone if self.alone else None

    @property
    def recall_sentence(self) -> float | None:
        return self.sentence_hits / self.sentence if self.sentence else None


@dataclass
class EvalResult:
    keywords: list[str]
    per_keyword: dict[str, KeywordStats]
    false_alarms: int
    negative_hours: float
    total_hours: float
    duplicates: int
    unlabelled_hits: int
    confusion: Counter = field(default_factory=Counter)  # (truth, detected) -> count
    outcomes: dict[str, str] = field(default_factory=dict)  # file -> hit/miss/fa/... summary
    fa_detections: list[Detection] = field(default_factory=list)

    @property
    def fa_per_hour(self) -> float:
        return self.false_alarms / self.negative_hours if self.negative_hours > 0 else 0.0

    def recall(self, in_sentence: bool | None = None) -> float | None:
        n = hits = 0
        for s in self.per_keyword.values():
            if in_sentence in (None, False):
                n, hits = n + s.alone, hits + s.alone_hits
            if in_sentence in (None, True):
                n, hits = n + s.sentence, hits + s.sentence_hits
        return hits / n if n else None

    def summary(self) -> dict:
        return {
            "keywords": {
                k: {"n_alone": s.alone, "recall_alone": s.recall_alone,
                    "n_in_sentence": s.sentence, "recall_in_sentence": s.recall_sentence,
                    "false_alarms": s.false_alarms}
                for k, s in self.per_keyword.items()},
            "recall_alone": self.recall(False), "recall_in_sentence": self.recall(True),
            "false_alarms": self.false_alarms, "fa_per_hour": round(self.fa_per_hour, 3),
            "negative_hours": round(self.negative_hours, 4),
            "total_hours": round(self.total_hours, 4),
            "duplicates": self.duplicates, "unlabelled_true_detections": self.unlabelled_hits,
        }


def truth_span(item: EvalItem, duration_s: float, tolerance_s: float) -> tuple[float, float] | None:
    if not item.keyword or item.kw_start_s is None or item.kw_end_s is None:
        return None
    return max(0.0, item.kw_start_s - tolerance_s), min(duration_s, item.kw_end_s + tolerance_s)


def _overlaps(a0: float, a1: float, b0: float, b1: float) -> bool:
    return a0 < b1 and b0 < a1


def group_by_file(items: list[EvalItem]) -> dict[str, list[EvalItem]]:
    """Rows per file, in manifest order (a file may hold several labelled keywords)."""
    out: dict[str, list[EvalItem]] = {}
    for item in items:
        out.setdefault(item.file, []).append(item)
    return out


def allowed_extra(rows: list[EvalItem], keyword: str) -> int:
    """Occurrences of `keyword` said in a file beyond its labelled ones (from the transcription)."""
    text = next((r.transcription for r in rows if r.transcription), "")
    if not text:
        return 0
    return max(0, count_keyword(text, keyword) - sum(r.keyword == keyword for r in rows))


def _union_length(spans: list[tuple[float, float]]) -> float:
    total, end = 0.0, -np.inf
    for a, b in sorted(spans):
        if b <= end:
            continue
        total += b - max(a, end)
        end = b
    return total


def score(items: list[EvalItem], detections: list[Detection], durations: dict[str, float],
          keywords: list[str], tolerance_s: float = 0.5) -> EvalResult:
    """Score the detections of every file in `durations` (unreadable files are left out)."""
    by_file: dict[str, list[Detection]] = {}
    for det in detections:
        by_file.setdefault(det.file, []).append(det)
    per_kw = {k: KeywordStats() for k in sorted({i.keyword for i in items if i.keyword},
                                                 key=lambda k: (k not in keywords, k))}
    result = EvalResult(keywords=list(keywords), per_keyword=per_kw, false_alarms=0,
                        negative_hours=0.0, total_hours=0.0, duplicates=0, unlabelled_hits=0)
    neg_s = tot_s = 0.0
    for file, rows in group_by_file(items).items():
        if file not in durations:
            continue
        dur = durations[file]
        tot_s += dur
        labelled = [(r, truth_span(r, dur, tolerance_s)) for r in rows if r.keyword]
        neg_s += dur - _union_length([sp for _, sp in labelled if sp is not None])
        hit = [False] * len(labelled)
        first_in_span: list[str | None] = [None] * len(labelled)
        used: Counter = Counter()
        outcome = []
        for det in sorted(by_file.get(file, []), key=lambda d: d.start_s):
            inside = [i for i, (_, sp) in enumerate(labelled)
                      if sp is not None and _overlaps(det.start_s, det.end_s, *sp)]
            same = [i for i in inside if labelled[i][0].keyword == det.keyword]
            for i in inside:
                if first_in_span[i] is None:
                    first_in_span[i] = det.keyword
            if same:
                fresh = [i for i in same if not hit[i]]
                if fresh:
                    hit[fresh[0]] = True
                    outcome.append("hit")
                else:
                    result.duplicates += 1
                    outcome.append("dup")
                continue
            if used[det.keyword] < allowed_extra(rows, det.keyword):
                used[det.keyword] += 1
                result.unlabelled_hits += 1
                outcome.append(f"unlabelled:{det.keyword}")
                continue
            result.false_alarms += 1
            result.fa_detections.append(det)
            per_kw.setdefault(det.keyword, KeywordStats()).false_alarms += 1
            if not inside:
                result.confusion[(NONE_LABEL, det.keyword)] += 1
            outcome.append(f"fa:{det.keyword}")
        for i, (row, _) in enumerate(labelled):
            stats = per_kw[row.keyword]
            if row.in_sentence:
                stats.sentence += 1
                stats.sentence_hits += hit[i]
            else:
                stats.alone += 1
                stats.alone_hits += hit[i]
            detected = row.keyword if hit[i] else (first_in_span[i] or MISSED_LABEL)
            result.confusion[(row.keyword, detected)] += 1
        if labelled:
            outcome.insert(0, f"hit {sum(hit)}/{len(hit)}" if len(hit) > 1
                           else "hit" if hit[0] else "miss")
        result.outcomes[file] = " ".join(dict.fromkeys(outcome)) or "-"
    result.negative_hours = neg_s / 3600.0
    result.total_hours = tot_s / 3600.0
    return result


# ----------------------------------------------------------------------------------------------
# DET curves from score traces (one pass, every threshold)


@dataclass
class ScoreTrace:
    """The decision scores of one file: one row per classifier hop (gated hops are absent)."""

    file: str
    start_s: np.ndarray  # (n,) window start times
    end_s: np.ndarray  # (n,) window end times
    scores: np.ndarray  # (n, len(keywords))


def count_events(times: np.ndarray, scores: np.ndarray, thresholds: np.ndarray,
                 refractory_s: float, release_ratio: float = 1.0,
                 gap_s: float | None = None) -> np.ndarray:
    """Events the decision would fire, for every threshold at once (one pass over the hops).

    Mirrors `kwsd.engine.decision`: fire when armed and score >= threshold and the refractory
    span has passed; disarm; re-arm once the score falls below threshold x `release_ratio`, or
    after a gap in the hops longer than `gap_s` (the VAD gate closed: the decision resets).
    """
    thr = np.asarray(thresholds, dtype=np.float64)
    counts = np.zeros(len(thr), dtype=np.int64)
    armed = np.ones(len(thr), dtype=bool)
    last = np.full(len(thr), -np.inf)
    release = thr * release_ratio
    prev = None
    for t, s in zip(np.asarray(times, dtype=np.float64), np.asarray(scores, dtype=np.float64),
                    strict=True):
        if gap_s is not None and prev is not None and t - prev > gap_s:
            armed[:] = True
        prev = t
        armed |= s < release
        fire = armed & (s >= thr) & (t - last >= refractory_s)
        counts += fire
        armed &= ~fire
        last[fire] = t
    return counts


@dataclass
class DetCurve:
    keyword: str
    thresholds: np.ndarray
    miss_rate: np.ndarray
    fa_per_hour: np.ndarray
    n_positives: int
    negative_hours: float
    false_alarms: np.ndarray  # counts behind fa_per_hour


def det_curves(items: list[EvalItem], traces: dict[str, ScoreTrace], durations: dict[str, float],
               keywords: list[str], thresholds: np.ndarray | None = None,
               tolerance_s: float = 0.5, refractory_s: float = 1.0, release_ratio: float = 1.0,
               gap_s: float | None = None, all_keywords: bool = False) -> dict[str, DetCurve]:
    """Miss rate and false alarms per hour for every threshold, for each labelled keyword
    (every keyword with `all_keywords`: false alarms of a negative-only set).

    A positive file is detected at threshold t when the keyword's score reaches t in a window
    overlapping its widened span; false alarms are events outside such spans, minus the
    occurrences the transcription allows.
    """
    if thresholds is None:
        thresholds = THRESHOLD_GRID
    thresholds = np.asarray(thresholds, dtype=np.float64)
    curves = {}
    groups = group_by_file(items)
    labelled = [k for k in keywords if all_keywords or any(i.keyword == k for i in items)]
    for ki, kw in ((keywords.index(k), k) for k in labelled):
        peaks, fas = [], np.zeros(len(thresholds), dtype=np.int64)
        neg_s = 0.0
        for file, rows in groups.items():
            trace = traces.get(file)
            if file not in durations or trace is None:
                continue
            dur = durations[file]
            s = trace.scores[:, ki] if len(trace.scores) else np.zeros(0)
            inside = np.zeros(len(s), dtype=bool)
            spans = [truth_span(r, dur, tolerance_s) for r in rows if r.keyword == kw]
            for sp in spans:
                here = (trace.start_s < sp[1]) & (trace.end_s > sp[0])
                peaks.append(float(s[here].max()) if here.any() else 0.0)
                inside |= here
            neg_s += dur - _union_length(spans)
            outside = ~inside
            events = count_events(trace.end_s[outside], s[outside], thresholds, refractory_s,
                                  release_ratio, gap_s)
            fas += np.maximum(0, events - allowed_extra(rows, kw))
        peaks_arr = np.asarray(peaks)
        miss = np.array([(peaks_arr < t).mean() if peaks_arr.size else np.nan for t in thresholds])
        hours = neg_s / 3600.0
        curves[kw] = DetCurve(kw, thresholds, miss, fas / hours if hours > 0 else fas * 0.0,
                              len(peaks), hours, fas)
    return curves
