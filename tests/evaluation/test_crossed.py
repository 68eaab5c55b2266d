"""The crossed check: thresholds chosen on some compositions, false alarms counted on others."""

import json

import numpy as np
import pytest
from kwsd.evaluation.compare import CompareError
from kwsd.evaluation.crossed import crossings, main, negative_hours
from kwsd.evaluation.scoring import THRESHOLD_GRID as GRID
from kwsd.events import round_score
from kwsd.head_training.calibrate import choose_threshold

HOURS = 2.0


def _summary(negative_peaks: dict[str, list[float]], positive_peaks: dict[str, list[float]],
             path: str = "s") -> dict:
    """What kwsd eval --plots writes, for negatives and positives with these peak scores."""
    det = {}
    for kw, peaks in negative_peaks.items():
        fa = np.array([sum(p >= t for p in peaks) for t in GRID]) + (GRID == 0) * 500
        pos = np.asarray(positive_peaks.get(kw, []))
        det[kw] = {"thresholds": GRID.tolist(),
                   "miss_rate": [float((pos < t).mean()) if pos.size else None for t in GRID],
                   "fa_per_hour": (fa / HOURS).round(3).tolist(),
                   "false_alarms": fa.tolist(), "n_positives": int(pos.size)}
    return {"det": det, "negative_hours": HOURS, "path": path}


def _peaks(rng, n=12):
    return sorted(rng.uniform(0.5, 0.98, n).round(3).tolist())


def test_thresholds_come_from_the_chosen_half_and_false_alarms_from_the_other():
    rng = np.random.default_rng(3)
    neg = [{"alpha": _peaks(rng), "beta": _peaks(rng)} for _ in range(4)]
    pos = {"alpha": rng.uniform(0.6, 1.0, 20).round(3).tolist()}
    summaries = [_summary(n, pos, f"c{i}") for i, n in enumerate(neg)]
    rows = crossings(summaries, copies=[1, 2], targets={"high": 4.0})
    assert [(r.copies, r.chosen_on, r.counted_on) for r in rows] == [
        (1, [0], [2, 3]), (1, [1], [2, 3]), (1, [2], [0, 1]), (1, [3], [0, 1]),
        (2, [0, 1], [2, 3]), (2, [2, 3], [0, 1])]
    for r in rows:
        assert r.expected == pytest.approx(4.0 * HOURS * len(r.counted_on))
        for kw in ("alpha", "beta"):
            # the rule kwsd train uses, on the chosen compositions' peaks pooled ...
            peaks = [p for i in r.chosen_on for p in neg[i][kw]]
            counts = np.array([sum(p >= t for p in peaks) for t in GRID]) + (GRID == 0) * 500 * len(
                r.chosen_on)
            thr = choose_threshold(counts, HOURS * len(r.chosen_on), 4.0)
            assert r.thresholds[kw] == round_score(thr)
            # ... and the false alarms: the other half's peaks at or above the grid step used
            step = GRID[np.searchsorted(GRID, thr - 1e-9)]
            assert r.false_alarms[kw] == sum(p >= step for i in r.counted_on
                                             for p in neg[i][kw])
        step = GRID[np.searchsorted(GRID, r.thresholds["alpha"] - 1e-9)]
        assert r.positives == 20 * len(r.counted_on)
        assert r.hits == sum(p >= step for p in pos["alpha"]) * len(r.counted_on)


def test_more_compositions_let_the_target_be_counted_not_extrapolated():
    """Four identical compositions pooled: 0.4 / h allows 3 false alarms in 8 h, so the threshold
    sits above the highest peak (it fires 4 times) however the tail would extrapolate."""
    rng = np.random.default_rng(5)
    neg = {"alpha": _peaks(rng, 30)}
    summaries = [_summary(neg, {}, f"c{i}") for i in range(8)]
    (four_ab, four_ba) = crossings(summaries, copies=[4], targets={"medium": 0.4})
    assert four_ab.thresholds["alpha"] > max(neg["alpha"])
    assert four_ab.false_alarms == four_ba.false_alarms == {"alpha": 0}
    assert four_ab.mean_abs_error == pytest.approx(0.4 * 4 * HOURS)
    assert negative_hours(summaries[0]["det"]["alpha"]) == pytest.approx(HOURS)


def test_summaries_that_cannot_be_crossed_are_refused():
    rng = np.random.default_rng(1)
    one = _summary({"alpha": _peaks(rng)}, {})
    with pytest.raises(CompareError, match="even number"):
        crossings([one] * 3, copies=[1])
    with pytest.raises(CompareError, match="each half holds 2"):
        crossings([one] * 4, copies=[3])
    other = _summary({"beta": _peaks(rng)}, {}, "other")
    with pytest.raises(CompareError, match="other keywords"):
        crossings([one, other], copies=[1])
    coarse = json.loads(json.dumps(one))
    coarse["det"]["alpha"]["thresholds"] = np.linspace(0, 1, len(GRID)).tolist()
    with pytest.raises(CompareError, match="calibration grid"):
        crossings([one, coarse], copies=[1])
    old = json.loads(json.dumps(one))  # an eval from before the grid went on past 0.9999
    old["det"]["alpha"]["thresholds"] = [t for t in GRID.tolist() if t <= 0.9999 or t == 1.0]
    with pytest.raises(CompareError, match="calibration grid"):
        crossings([one, old], copies=[1])


def test_command_line_writes_every_crossing(tmp_path, capsys):
    rng = np.random.default_rng(2)
    dirs = []
    for i in range(4):
        d = tmp_path / f"c{i}"
        d.mkdir()
        s = _summary({"alpha": _peaks(rng)}, {"alpha": [0.9, 0.99]})
        s.update(keywords={}, outcomes=[])
        (d / "summary.json").write_text(json.dumps(s))
        dirs.append(str(d))
    out = tmp_path / "crossed.json"
    assert main(dirs + ["--copies", "1,2", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert len(rows) == 3 * (4 + 2)  # low, medium, high x (K=1: 2 + 2, K=2: 1 + 1)
    assert "medium" in capsys.readouterr().out
    assert main(dirs[:3]) == 2
    assert "even number" in capsys.readouterr().err
