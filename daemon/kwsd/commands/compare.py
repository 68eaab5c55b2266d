"""`kwsd compare`: two evaluations of one manifest at equal false alarms, keyword by keyword.

    kwsd eval --model A --manifest M --out a.jsonl --plots eval-a
    kwsd eval --model B --manifest M --out b.jsonl --plots eval-b
    kwsd compare eval-a eval-b

Prints, per keyword, the baseline's hits and false alarms at its own thresholds, the hits its
own DET curve reaches at those false alarms, the candidate's hits at no more false alarms (from
its DET curve), and the sum over the keywords. The candidate's figure compares with the
baseline's curve figure: both are read at the best threshold for the same false alarms.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

HELP = "compare two evaluations of one manifest at equal false alarms per keyword"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("baseline", type=Path,
                        help="kwsd eval --plots folder (or its summary.json) of the baseline")
    parser.add_argument("candidate", type=Path, help="the same of the candidate")
    parser.add_argument("--keywords", default=None,
                        help="comma-separated keywords (default: every labelled keyword)")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a table")


def run(args: argparse.Namespace) -> int:
    from kwsd.evaluation.compare import (
        CompareError,
        compare_at_baseline_false_alarms,
        read_summary,
    )
    from kwsd.events import round_score

    keywords = [k.strip() for k in args.keywords.split(",") if k.strip()] \
        if args.keywords else None
    try:
        baseline, candidate = read_summary(args.baseline), read_summary(args.candidate)
        rows = compare_at_baseline_false_alarms(baseline, candidate, keywords)
    except CompareError as exc:
        print(f"kwsd compare: {exc}", file=sys.stderr)
        return 2
    total = {"positives": sum(r.positives for r in rows),
             "baseline_hits": sum(r.baseline_hits for r in rows),
             "baseline_false_alarms": sum(r.baseline_false_alarms for r in rows),
             "baseline_curve_hits": sum(r.baseline_curve_hits for r in rows),
             "candidate_hits": sum(r.candidate_hits for r in rows),
             "candidate_false_alarms": sum(r.candidate_false_alarms for r in rows)}
    if args.json:
        print(json.dumps({"baseline": baseline.get("model"), "candidate": candidate.get("model"),
                          "keywords": [asdict(r) for r in rows], "all": total}, indent=1))
        return 0
    print(f"baseline {baseline.get('model')} ({baseline['path']}) against candidate "
          f"{candidate.get('model')} ({candidate['path']}), at the baseline's false alarms "
          "per keyword (compare the candidate's hits with the baseline's on its curve)")
    print(f"{'keyword':14s} {'labelled':>8s} {'baseline hits, FA':>18s} {'on its curve':>12s}  "
          f"{'candidate hits, FA (threshold)':>31s}")
    for r in rows:
        thr = "none" if r.candidate_threshold is None else str(round_score(r.candidate_threshold))
        print(f"{r.keyword:14s} {r.positives:8d} {r.baseline_hits:12d}, "
              f"{r.baseline_false_alarms:3d} {r.baseline_curve_hits:12d}  {r.candidate_hits:15d}, "
              f"{r.candidate_false_alarms:3d} ({thr})")
    print(f"{'all':14s} {total['positives']:8d} {total['baseline_hits']:12d}, "
          f"{total['baseline_false_alarms']:3d} {total['baseline_curve_hits']:12d}  "
          f"{total['candidate_hits']:15d}, "
          f"{total['candidate_false_alarms']:3d}")
    return 0
