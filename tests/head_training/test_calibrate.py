"""Thresholds for a false-alarm target, including heads that are confident on negatives."""

import numpy as np
from kwsd.events import round_score
from kwsd.head_training import calibrate as cal


def _counts(neg_scores: list[float]) -> np.ndarray:
    """False alarms at each grid threshold when each negative fires once at its score."""
    scores = np.asarray(neg_scores)
    return np.array([(scores >= t).sum() for t in cal.GRID])


def test_the_grid_reaches_past_0_995_in_fine_steps_and_on_towards_1():
    assert cal.GRID[0] == 0.0 and cal.GRID[-1] == 1.0 and np.all(np.diff(cal.GRID) > 0)
    fine = cal.GRID[(cal.GRID > 0.99) & (cal.GRID <= 0.9999)]
    assert np.allclose(np.diff(fine), 1e-4)
    # above 0.9999, steps of 10^0.1 in 1 - p down to 1 - 1e-6 (session 29: a real negative at
    # 1 - 4.6e-5 with most keyword clips above it needs a threshold between them)
    gaps = 1.0 - cal.GRID[(cal.GRID >= 0.9999) & (cal.GRID < 1.0)]
    assert len(gaps) == 21 and np.allclose(np.log10(gaps[:-1] / gaps[1:]), 0.1, atol=5e-3)
    assert cal.MAX_THRESHOLD == cal.GRID[-2] == 0.999999
    assert 0.99995 < cal.choose_threshold(_counts([0.99995]), hours=1.0, target=0.0) < 0.99999
    assert cal.GRID.tolist() == [round_score(t) for t in cal.GRID]  # as stored in summaries


def test_scores_near_1_keep_three_digits_of_their_distance_to_1():
    assert round_score(0.123456) == 0.1235 and round_score(0.9995123) == 0.999512
    assert round_score(0.9999541234) == 0.9999541 and round_score(1 - 1.234e-6) == 0.99999877
    assert round_score(1.0) == 1.0 and round_score(np.float32(0.99996)) == 0.99996


def test_with_few_negatives_a_negative_at_0_997_is_kept_out_without_jumping_to_the_cap():
    thr = cal.choose_threshold(_counts([0.5, 0.997]), hours=2.0, target=0.1)
    assert 0.997 < thr < cal.MAX_THRESHOLD  # margin at most half the way to 1
    assert cal.choose_threshold(_counts([0.9999995]), hours=1.0, target=0.0) == cal.MAX_THRESHOLD


def test_allowed_false_alarms_are_counted_on_the_set():
    negatives = [0.6, 0.8, 0.95, 0.999]
    assert cal.choose_threshold(_counts(negatives), hours=1.0, target=2.0) == 0.801


def test_negative_peaks_are_read_off_the_count_curve():
    peaks = cal.negative_peaks(_counts([0.42, 0.9013, 0.99991, 0.9999995, 1.0]))
    assert np.allclose(peaks, [cal.TOP_SCORE, 0.999999, 0.9999, 0.901, 0.42], rtol=0,
                       atol=1e-9)
    assert cal.MAX_THRESHOLD < cal.TOP_SCORE < 1.0


def _tail_negatives(rng: np.random.Generator, n: int, scale: float) -> np.ndarray:
    """Negative peaks whose logits have an exponential tail above 0 (in units of `scale`)."""
    logits = rng.exponential(scale, n)
    return 1.0 / (1.0 + np.exp(-logits))


def test_rates_below_one_per_set_are_extrapolated_from_the_tail():
    rng = np.random.default_rng(0)
    hours, target, scale = 2.0, 0.4, 0.8    # 0.8 false alarms expected on the set
    n = 400
    thr = cal.choose_threshold(_counts(_tail_negatives(rng, n, scale)), hours, target)
    # the rate the tail really has at that threshold: n * P(logit > t)
    logit = np.log(thr / (1 - thr))
    true_rate = n * np.exp(-logit / scale) / hours
    assert target / 2.5 < true_rate < target * 2.5
    low = cal.choose_threshold(_counts(_tail_negatives(rng, n, scale)), hours, 0.1)
    assert low > thr  # a stricter target gets its own, higher threshold


def test_one_outlying_negative_does_not_set_the_threshold():
    rng = np.random.default_rng(1)
    negatives = list(_tail_negatives(rng, 300, 0.6))
    base = cal.choose_threshold(_counts(negatives), hours=2.0, target=0.4)
    outlier = cal.choose_threshold(_counts(negatives + [0.9995]), hours=2.0, target=0.4)
    assert outlier < 0.995                # the old rule put it above that clip (0.9997)
    logit = lambda p: np.log(p / (1 - p))  # noqa: E731
    # the clip's excess (about 6 logits) weighs 1/20th: the threshold moves by about
    # 6 / 20 x ln(20 / 0.8) = 1 logit, not all the way past the clip
    assert 0 < logit(outlier) - logit(base) < 1.2
