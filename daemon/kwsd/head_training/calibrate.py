"""Per-keyword thresholds for a target false-alarm rate, from one pass over held-out audio.

The scores are the decision scores the engine compares with the threshold (recorded per hop
while the held-out synthetic negatives run through the real VAD gate + streaming classifier), so
a threshold chosen here means the same thing live. With H hours of negatives a rate below 1/H
per hour cannot be counted: such targets are extrapolated from the exponential tail of the
negatives' highest peaks in logit space (`kwsd.evaluation.tail`), so that no single clip sets a
keyword's threshold; the card says how many hours stand behind each figure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kwsd.evaluation.scoring import THRESHOLD_GRID as GRID  # the grid DET curves are read at
from kwsd.evaluation.scoring import DetCurve
from kwsd.evaluation.tail import MIN_PEAKS, TAIL_PEAKS, tail_threshold
from kwsd.events import round_score

SENSITIVITY_FA_PER_HOUR: dict[str, float] = {"low": 0.2, "medium": 1.0, "high": 5.0}
"""User-facing `sensitivity` -> target false alarms per hour on held-out negatives.
low: fewest false alarms (misses more); high: catches more, fires more often."""
DEFAULT_SENSITIVITY = "medium"
MARGIN = 0.02  # above the highest negative score when too few negatives fire for a tail fit
# (at most half the distance to 1, so that the margin never jumps over the fine steps near 1)
MAX_THRESHOLD = float(GRID[-2])  # the grid's last step below 1 (1 - 1e-6)
TOP_SCORE = 1.0 - (1.0 - MAX_THRESHOLD) / 2  # a peak at or above that step counts as this
MIN_THRESHOLD = 0.3  # never fire on a keyword the head finds less likely than this


@dataclass(frozen=True)
class Calibration:
    keyword: str
    target_fa_per_hour: float
    threshold: float
    fa_per_hour: float  # measured on the negatives at that threshold
    recall: float | None  # measured on held-out positives at that threshold
    negative_hours: float


def negative_peaks(counts: np.ndarray, grid: np.ndarray = GRID, k: int = TAIL_PEAKS) -> np.ndarray:
    """The k highest negative peak scores, read off a false-alarm count curve: the c-th highest
    is the highest grid threshold at which c false alarms still fire."""
    counts = np.asarray(counts)
    top = [float(grid[np.flatnonzero(counts >= c)[-1]])
           for c in range(1, min(k, int(counts.max(initial=0))) + 1)]
    return np.minimum(np.asarray(top, dtype=np.float64), TOP_SCORE)


def _logit(p: np.ndarray) -> np.ndarray:
    return np.log(p) - np.log1p(-p)


def choose_threshold(counts: np.ndarray, hours: float, target: float,
                     grid: np.ndarray = GRID) -> float:
    """Lowest grid threshold whose false-alarm count stays within target x hours; below one
    false alarm on the set, the logit-space tail extrapolation of the highest negative peaks."""
    expected = target * hours
    allowed = int(np.floor(expected + 1e-9))
    if allowed == 0 and expected > 0:
        fit = tail_threshold(_logit(np.clip(negative_peaks(counts, grid), 1e-6, None)), expected)
        if fit is not None:
            thr = float(1.0 / (1.0 + np.exp(-fit.threshold)))
            return float(np.clip(thr, MIN_THRESHOLD, MAX_THRESHOLD))
    ok = np.flatnonzero(counts <= allowed)
    if ok.size == 0:
        return MAX_THRESHOLD
    thr = float(grid[ok[0]])
    if allowed == 0 and ok[0] > 0:
        thr += min(MARGIN, (1.0 - thr) / 2)  # the set shows no false alarm only just above
    return float(np.clip(thr, MIN_THRESHOLD, MAX_THRESHOLD))


def grid_index(threshold: float, grid: np.ndarray = GRID) -> int:
    """The first grid step at or above a threshold: where a DET curve on the grid is read for
    it (a tail-extrapolated threshold falls between steps)."""
    return min(int(np.searchsorted(grid, threshold - 1e-9)), len(grid) - 1)


def calibrate(curves: dict[str, DetCurve], keywords: list[str],
              targets: dict[str, float] | None = None) -> dict[str, dict[str, Calibration]]:
    """sensitivity -> keyword -> Calibration, from DET curves measured on held-out data with
    `GRID` thresholds (see `scoring.det_curves`). Keywords without a curve are refused."""
    targets = targets or SENSITIVITY_FA_PER_HOUR
    missing = [k for k in keywords if k not in curves]
    if missing:
        raise ValueError(f"no held-out positives for keyword(s) {', '.join(missing)}: "
                         "cannot calibrate their thresholds")
    out: dict[str, dict[str, Calibration]] = {name: {} for name in targets}
    for kw in keywords:
        c = curves[kw]
        if not np.array_equal(c.thresholds, GRID):
            raise ValueError("curves must be computed on calibrate.GRID")
        if c.negative_hours <= 0:
            raise ValueError("calibration needs held-out negative audio (0 hours)")
        counts = np.round(c.fa_per_hour * c.negative_hours).astype(np.int64)
        for name, target in targets.items():
            thr = choose_threshold(counts, c.negative_hours, target)
            idx = grid_index(thr)
            miss = c.miss_rate[idx]
            out[name][kw] = Calibration(
                keyword=kw, target_fa_per_hour=target, threshold=round_score(thr),
                fa_per_hour=float(c.fa_per_hour[idx]),
                recall=None if np.isnan(miss) else float(1.0 - miss),
                negative_hours=c.negative_hours)
    return out


def to_meta(cal: dict[str, dict[str, Calibration]],
            negatives: str = "held-out synthetic negatives") -> dict:
    """The kws.json block: thresholds per sensitivity and what each was measured to do."""
    return {
        "default": DEFAULT_SENSITIVITY,
        "targets_fa_per_hour": {name: next(iter(c.values())).target_fa_per_hour
                                for name, c in cal.items() if c},
        "thresholds": {name: {kw: c.threshold for kw, c in per.items()}
                       for name, per in cal.items()},
        "measured": {name: {kw: {"fa_per_hour": round(c.fa_per_hour, 3),
                                 "recall": None if c.recall is None else round(c.recall, 4)}
                            for kw, c in per.items()} for name, per in cal.items()},
        "negative_hours": round(next((c.negative_hours for per in cal.values()
                                      for c in per.values()), 0.0), 4),
        "method": f"per keyword, lowest threshold whose false alarms on {negatives} "
                  "(real VAD gate + streaming path) stay within target x hours; "
                  "when that is below one false alarm on the set, extrapolated from an "
                  f"exponential fit to the logit of the {TAIL_PEAKS} highest negative peaks "
                  f"(+{MARGIN} above the highest negative when fewer than {MIN_PEAKS} fire); "
                  f"clipped to [{MIN_THRESHOLD}, {MAX_THRESHOLD}]",
    }
