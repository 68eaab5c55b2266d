"""The exponential-tail extrapolation both calibrations use (head presets, enrolled keywords)."""

import numpy as np
import pytest
from kwsd.evaluation.tail import tail_threshold


def test_an_exponential_tail_is_extrapolated_to_the_allowed_count():
    rng = np.random.default_rng(3)
    peaks = rng.exponential(2.0, 5000)     # P(x > t) = exp(-t / 2)
    fit = tail_threshold(peaks, allowed=0.5, k=200)
    expected = 2.0 * np.log(5000 / 0.5)    # where 0.5 of 5000 exceed
    assert fit.peaks == 200 and fit.scale == pytest.approx(2.0, rel=0.2)
    assert fit.threshold == pytest.approx(expected, rel=0.1)


def test_every_peak_of_the_tail_weighs_the_same():
    base = np.arange(20, dtype=float)[::-1] / 10       # 1.9 ... 0.0
    moved = base.copy()
    moved[0] += 10.0                                    # the highest peak is an outlier
    shift = tail_threshold(moved, 0.5).threshold - tail_threshold(base, 0.5).threshold
    assert shift == pytest.approx(10.0 / 20 * np.log(20 / 0.5))


def test_too_few_peaks_or_no_allowance_are_refused():
    assert tail_threshold(np.array([0.9, 0.8]), 0.5) is None
    with pytest.raises(ValueError, match="allowed false alarms"):
        tail_threshold(np.arange(10.0), 0)
