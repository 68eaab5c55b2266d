"""Markdown tables for a model card, from `kwsd eval --plots` summaries (no figure is typed in
by hand: the card's numbers are the evaluation's numbers).

    python -m kwsd.head_training.card eval/wuw-dev/summary.json eval/speech/summary.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f} %"


def recall_table(summary: dict, title: str) -> str:
    lines = [f"**{title}**", "",
             "| keyword | alone: hits / n | recall alone | in sentence: hits / n | "
             "recall in sentence | false alarms |",
             "|---|---|---|---|---|---|"]
    for kw, s in summary["keywords"].items():
        na, ns = s["n_alone"], s["n_in_sentence"]
        ha = round((s["recall_alone"] or 0) * na)
        hs = round((s["recall_in_sentence"] or 0) * ns)
        lines.append(f"| {kw} | {ha} / {na} | {_pct(s['recall_alone']) if na else '–'} | "
                     f"{hs} / {ns} | {_pct(s['recall_in_sentence']) if ns else '–'} | "
                     f"{s['false_alarms']} |")
    lines.append(f"| **all** | | **{_pct(summary['recall_alone'])}** | | "
                 f"**{_pct(summary['recall_in_sentence'])}** | **{summary['false_alarms']}** |")
    lines += ["", f"False alarms: {summary['false_alarms']} in {summary['negative_hours']:.3f} h "
              f"of audio outside the labelled keywords = **{summary['fa_per_hour']:.1f} per "
              f"hour** (files: {summary['total_hours']:.3f} h; duplicate detections: "
              f"{summary['duplicates']}; detections of unlabelled keywords the transcription "
              f"contains: {summary['unlabelled_true_detections']}; unreadable files: "
              f"{len(summary.get('unreadable', {}))})."]
    return "\n".join(lines)


def fa_line(summary: dict, title: str) -> str:
    return (f"**{title}**: {summary['false_alarms']} false alarms in "
            f"{summary['total_hours']:.3f} h = {summary['fa_per_hour']:.1f} per hour; by keyword: "
            + (", ".join(f"{k} {v['false_alarms']}" for k, v in summary["keywords"].items()
                         if v["false_alarms"]) or "none"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("summaries", nargs="+", type=Path)
    a = p.parse_args(argv)
    for path in a.summaries:
        s = json.loads(path.read_text())
        has_kw = any(v["n_alone"] + v["n_in_sentence"] for v in s["keywords"].values())
        print(recall_table(s, str(path)) if has_kw else fa_line(s, str(path)))
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
