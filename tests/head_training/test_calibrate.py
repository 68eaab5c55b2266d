"""Thresholds for a false-alarm target, including heads that are confident on negatives."""

import numpy as np
from kwsd.head_training import calibrate as cal


def _counts(neg_scores: list[float]) -> np.ndarray:
    """False alarms at each grid threshold when each negative fires once at its score."""
    scores = np.asarray(neg_scores)
    return np.array([(scores >= t).sum() for t in cal.GRID])


def test_the_grid_reaches_past_0_995_in_fine_steps():
    assert cal.GRID[0] == 0.0 and cal.GRID[-1] == 1.0 and np.all(np.diff(cal.GRID) > 0)
    fine = cal.GRID[(cal.GRID > 0.99) & (cal.GRID < 1.0)]
    assert np.allclose(np.diff(fine), 1e-4) and fine.max() == cal.MAX_THRESHOLD


def test_a_negative_at_0_997_is_kept_out_without_jumping_to_the_cap():
    thr = cal.choose_threshold(_counts([0.5, 0.9, 0.997]), hours=2.0, target=0.1)
    assert 0.997 < thr < cal.MAX_THRESHOLD  # margin at most half the way to 1
    assert (np.asarray([0.5, 0.9, 0.997]) >= thr).sum() == 0


def test_allowed_false_alarms_lower_the_threshold_and_the_cap_holds():
    negatives = [0.6, 0.8, 0.95, 0.999]
    strict = cal.choose_threshold(_counts(negatives), hours=1.0, target=0.5)   # none allowed
    loose = cal.choose_threshold(_counts(negatives), hours=1.0, target=2.0)    # two allowed
    assert loose == 0.801 and 0.999 < strict < cal.MAX_THRESHOLD  # 0.95 and 0.999 may fire
    assert cal.choose_threshold(_counts([0.99995]), hours=1.0, target=0.0) == cal.MAX_THRESHOLD
