"""Two models on one evaluation set at equal false alarms, keyword by keyword.

Thresholds set on real speech put two models at different false-alarm rates on other audio
(synthetic voices, say), so their recall at their own thresholds compares two operating points,
not two models. This reads two `kwsd eval --plots` summaries of the same manifest and gives, per
keyword, the candidate's hits at no more false alarms than the baseline had at its own
thresholds, read from the candidate's DET curve (`scoring.THRESHOLD_GRID`).

Reading the candidate at the best threshold of its curve favours it over a baseline held to
thresholds calibrated on other audio (kwsd-demo-20 against itself: 694 hits against 664 on
session 28's held-out real callers). So the baseline is read from its own curve at the same
false alarms too (`baseline_curve_hits`): that figure, not the baseline's hits at its
thresholds, is the one to set the candidate's against.

The DET curve counts each keyword on its own, while the live decision lets one keyword fire per
hop and holds the others for a moment: where several keywords pass their thresholds at once (a
threshold near 0) the two counts differ. At operating thresholds they agree (every keyword of
two models on festival's held-out voices, session 21: the same hits and false alarms).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


class CompareError(ValueError):
    """Summaries that cannot be compared (named in the message)."""


@dataclass(frozen=True)
class KeywordComparison:
    keyword: str
    positives: int
    baseline_hits: int
    baseline_false_alarms: int
    baseline_curve_hits: int  # the baseline's own DET curve at the same false alarms
    candidate_hits: int  # at the threshold below
    candidate_false_alarms: int
    candidate_threshold: float | None  # None: no threshold kept to the baseline's false alarms


def read_summary(path: Path) -> dict:
    """A `kwsd eval --plots DIR` summary: DIR/summary.json, or the file itself."""
    path = path / "summary.json" if path.is_dir() else path
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CompareError(f"{path}: no such file (kwsd eval --plots DIR writes "
                           "DIR/summary.json)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CompareError(f"{path}: not a kwsd eval summary ({exc})") from None
    if not isinstance(summary, dict) or "keywords" not in summary or "det" not in summary:
        raise CompareError(f"{path}: not a kwsd eval summary (no keywords or det)")
    for kw, det in summary["det"].items():
        if "false_alarms" not in det or "n_positives" not in det:
            raise CompareError(f"{path}: written by an older kwsd eval (no false-alarm counts "
                               f"in the DET of {kw!r}): run kwsd eval again")
    summary["path"] = str(path)
    return summary


def _hits(stats: dict) -> int:
    return round((stats["recall_alone"] or 0) * stats["n_alone"]
                 + (stats["recall_in_sentence"] or 0) * stats["n_in_sentence"])


def _best_at(det: dict, n: int, max_false_alarms: int) -> tuple[int, int, float | None]:
    """The most hits of a DET curve at no more than `max_false_alarms`: hits, false alarms,
    threshold (0, 0, None when no threshold keeps to them)."""
    best = (0, 0, None)
    for thr, miss, fa in zip(det["thresholds"], det["miss_rate"], det["false_alarms"],
                             strict=True):
        hits = round((1 - miss) * n)
        if fa <= max_false_alarms and hits > best[0]:
            best = (hits, fa, thr)
    return best


def compare_at_baseline_false_alarms(baseline: dict, candidate: dict,
                                     keywords: list[str] | None = None
                                     ) -> list[KeywordComparison]:
    """Per keyword (default: every keyword labelled in both), the candidate's and the
    baseline's most hits on their curves at no more false alarms than the baseline's at its
    own thresholds."""
    labelled = [kw for kw in baseline["det"]
                if baseline["det"][kw]["n_positives"] and kw in candidate["det"]]
    if keywords is None:
        keywords = labelled
    if not keywords:
        raise CompareError("no keyword is labelled in both evaluations")
    out = []
    for kw in keywords:
        if kw not in labelled:
            raise CompareError(f"{kw!r} is not a labelled keyword of both evaluations "
                               f"({', '.join(labelled) or 'none'})")
        base, det = baseline["keywords"][kw], candidate["det"][kw]
        n = base["n_alone"] + base["n_in_sentence"]
        if det["n_positives"] != n or candidate["keywords"][kw]["n_alone"] != base["n_alone"]:
            raise CompareError(f"{kw!r}: {n} labelled in {baseline['path']} but "
                               f"{det['n_positives']} in {candidate['path']}: not the same set")
        base_fa = base["false_alarms"]
        base_curve_hits = _best_at(baseline["det"][kw], n, base_fa)[0]
        out.append(KeywordComparison(kw, n, _hits(base), base_fa, base_curve_hits,
                                     *_best_at(det, n, base_fa)))
    return out
