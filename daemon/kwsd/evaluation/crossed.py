"""Thresholds chosen on some evaluations, false alarms counted on others: the crossed check.

A threshold set for 0.4 false alarms per hour on two hours of negatives rests on less than one
false alarm; on other audio it may fire several times as often. This measures how far off a
calibration lands: give it `kwsd eval --plots` summaries of several compositions of one
held-out set (`kwsd train --heldout-copies K --prepare-only` writes them, c0, c1, ...), split
into two halves; thresholds are chosen (`calibrate.choose_threshold`, the rule `kwsd train`
uses) on K pooled compositions of one half and the false alarms counted on the whole other half,
and the other way round.

    python -m kwsd.evaluation.crossed DIR_c0 ... DIR_c7 [--copies 1,2,4] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from kwsd.evaluation.compare import CompareError, read_summary
from kwsd.evaluation.scoring import THRESHOLD_GRID
from kwsd.events import round_score
from kwsd.head_training.calibrate import choose_threshold, grid_index

TARGETS = {"low": 0.1, "medium": 0.4, "high": 4.0}  # train-demo.sh's FA_TARGETS


@dataclass(frozen=True)
class Crossing:
    target: str
    copies: int  # compositions the thresholds were chosen on
    chosen_on: list[int]  # summary indices
    counted_on: list[int]
    thresholds: dict[str, float]
    false_alarms: dict[str, int]  # per keyword, on the counted half
    expected: float  # target x the counted half's negative hours, per keyword
    hits: int  # keyword clips found on the counted half (labelled keywords only)
    positives: int

    @property
    def mean_abs_error(self) -> float:
        return float(np.mean([abs(n - self.expected) for n in self.false_alarms.values()]))


def _grid_checked(summary: dict) -> None:
    for kw, det in summary["det"].items():
        thresholds = np.asarray(det["thresholds"], np.float64)
        if thresholds.shape != THRESHOLD_GRID.shape or not np.allclose(
                thresholds, THRESHOLD_GRID, rtol=0, atol=1e-9):
            raise CompareError(f"{summary['path']}: the DET of {kw!r} is not on the "
                               "calibration grid (run kwsd eval again)")


def negative_hours(det: dict) -> float:
    """The keyword's negative hours: its false alarms over their rate, where any fire."""
    fa, rate = np.asarray(det["false_alarms"], float), np.asarray(det["fa_per_hour"], float)
    fired = np.flatnonzero((fa > 0) & (rate > 0))
    if fired.size == 0:
        raise CompareError("a DET curve without false alarms even at threshold 0: "
                           "its negative hours cannot be read")
    return float(fa[fired[0]] / rate[fired[0]])


def pooled(summaries: list[dict], keyword: str) -> tuple[np.ndarray, float]:
    """False-alarm counts on the grid and negative hours, summed over the summaries."""
    dets = [s["det"][keyword] for s in summaries]
    return (np.sum([np.asarray(d["false_alarms"], np.int64) for d in dets], axis=0),
            sum(negative_hours(d) for d in dets))


def cross(summaries: list[dict], chosen_on: list[int], counted_on: list[int], target: str,
          fa_per_hour: float, keywords: list[str]) -> Crossing:
    thresholds, false_alarms = {}, {}
    hits = positives = 0
    hours = 0.0
    for kw in keywords:
        counts, cal_hours = pooled([summaries[i] for i in chosen_on], kw)
        thr = choose_threshold(counts, cal_hours, fa_per_hour)
        idx = grid_index(thr)  # as calibrate reads its own curves
        test_counts, hours = pooled([summaries[i] for i in counted_on], kw)
        thresholds[kw] = round_score(thr)
        false_alarms[kw] = int(test_counts[idx])
        for i in counted_on:
            det = summaries[i]["det"][kw]
            if det["n_positives"]:
                hits += round((1 - det["miss_rate"][idx]) * det["n_positives"])
                positives += det["n_positives"]
    return Crossing(target, len(chosen_on), chosen_on, counted_on, thresholds, false_alarms,
                    round(fa_per_hour * hours, 3), hits, positives)


def crossings(summaries: list[dict], copies: list[int],
              targets: dict[str, float] | None = None) -> list[Crossing]:
    """Halves A (the first half of the summaries) and B: for each K, thresholds on every block
    of K compositions of one half, counted on the whole other half."""
    targets = targets or TARGETS
    if len(summaries) < 2 or len(summaries) % 2:
        raise CompareError(f"an even number of summaries is needed (two halves), not "
                           f"{len(summaries)}")
    keywords = list(summaries[0]["det"])
    for s in summaries:
        _grid_checked(s)
        if list(s["det"]) != keywords:
            raise CompareError(f"{s['path']}: other keywords than {summaries[0]['path']}")
    half = len(summaries) // 2
    a, b = list(range(half)), list(range(half, 2 * half))
    out = []
    for k in copies:
        if not 1 <= k <= half:
            raise CompareError(f"--copies {k}: each half holds {half} compositions")
        for name, rate in targets.items():
            for mine, other in ((a, b), (b, a)):
                for start in range(0, half - k + 1, k):
                    out.append(cross(summaries, mine[start:start + k], other, name, rate,
                                     keywords))
    return out


def report(rows: list[Crossing]) -> str:
    lines = ["target  K  crossings  mean |FA - expected| per keyword  (signed)  "
             "FA counted / expected (all keywords)  keyword hits"]
    for name in dict.fromkeys(r.target for r in rows):
        for k in sorted({r.copies for r in rows if r.target == name}):
            group = [r for r in rows if r.target == name and r.copies == k]
            fa = [n for r in group for n in r.false_alarms.values()]
            signed = np.mean([n - r.expected for r in group for n in r.false_alarms.values()])
            expected = np.mean([r.expected * len(r.false_alarms) for r in group])
            hits, pos = sum(r.hits for r in group), sum(r.positives for r in group)
            found = f"{hits / pos:.1%} of {pos}" if pos else "-"
            lines.append(f"{name:7s} {k:2d}  {len(group):9d}  "
                         f"{np.mean([r.mean_abs_error for r in group]):31.2f}  "
                         f"({signed:+.2f})  {sum(fa) / len(group):17.1f} / {expected:.1f}"
                         f"{'':15s}{found}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kwsd.evaluation.crossed", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("summaries", nargs="+", type=Path,
                   help="kwsd eval --plots folders (or summary.json), one per composition")
    p.add_argument("--copies", default="1,2,4",
                   help="compositions pooled for the thresholds, comma-separated (1,2,4)")
    p.add_argument("--json", type=Path, help="write every crossing here")
    args = p.parse_args(argv)
    try:
        copies = [int(x) for x in args.copies.split(",")]
        rows = crossings([read_summary(s) for s in args.summaries], copies)
    except (CompareError, ValueError) as exc:
        print(f"kwsd.evaluation.crossed: {exc}", file=sys.stderr)
        return 2
    print(report(rows))
    if args.json:
        args.json.write_text(json.dumps([{**asdict(r), "mean_abs_error": r.mean_abs_error}
                                         for r in rows], indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
