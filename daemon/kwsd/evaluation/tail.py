"""False-alarm rates lower than a set of negatives can show, from the tail of its peak scores.

An hour or two of negative speech cannot show a rate like one false alarm in five hours: at
such a target no negative may fire, and a threshold "just above the highest negative" lets one
clip decide it. Peaks over a threshold follow an exponential tail (the generalised Pareto
limit with shape 0), so the k highest peaks give the tail's scale by maximum likelihood (their
mean excess over the k-th) and the threshold expected to be crossed `allowed` times is
extrapolated from it. Every one of the k peaks weighs the same: the highest one moves the
threshold by 1/k of its excess, no more. Both calibrations use this: enrolled keywords on the
shipped negative bank (score space) and a trained head's presets on held-out real speech (logit
space, where a saturating posterior's tail is exponential).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TAIL_PEAKS = 20
MIN_PEAKS = 3


@dataclass(frozen=True)
class TailFit:
    threshold: float  # expected to be crossed `allowed` times on the set
    start: float      # the k-th highest peak
    scale: float      # mean excess of the k highest peaks over it
    peaks: int        # k


def tail_threshold(peaks: np.ndarray, allowed: float, k: int = TAIL_PEAKS,
                   min_scale: float = 1e-3) -> TailFit | None:
    """Threshold that the set's negatives are expected to cross `allowed` (> 0, may be < 1)
    times, from its highest `k` peaks (one per false-alarm event); None with fewer than
    `MIN_PEAKS` peaks, where no tail can be fitted."""
    if allowed <= 0:
        raise ValueError(f"allowed false alarms must be > 0, got {allowed}")
    top = np.sort(np.asarray(peaks, dtype=np.float64))[::-1][:k]
    if len(top) < MIN_PEAKS:
        return None
    start = float(top[-1])
    scale = max(float(np.mean(top - start)), min_scale)
    return TailFit(start + scale * float(np.log(len(top) / allowed)), start, scale, len(top))
