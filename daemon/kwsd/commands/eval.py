"""`kwsd eval`: measure a bundle on a manifest of WAV files through the daemon's own path.

    kwsd eval --model models/demo --manifest ../shared/data/real-dev/wuw-dev.csv \\
        --out detections.jsonl --plots eval-plots/

Writes one JSON line per detection, prints per-keyword recall (alone / in a sentence) and false
alarms per hour, and with --plots writes det.png, confusion.png and summary.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

HELP = "evaluate a model bundle on a manifest of WAV files"
log = logging.getLogger("kwsd.eval")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, type=Path, help="model bundle folder")
    parser.add_argument("--manifest", required=True, type=Path,
                        help="CSV with file,keyword,kw_start_s,kw_end_s,in_sentence "
                             "(paths relative to the CSV)")
    parser.add_argument("--out", required=True, type=Path, help="detections, one JSON per line")
    parser.add_argument("--plots", type=Path, default=None,
                        help="folder for det.png, confusion.png and summary.json")
    parser.add_argument("--sensitivity", choices=["low", "medium", "high"], default=None,
                        help="use the bundle's thresholds for this sensitivity "
                             "(default: the bundle's default thresholds)")
    parser.add_argument("--threshold", action="append", default=[], metavar="KEYWORD=VALUE",
                        help="override one keyword's threshold (repeatable)")
    parser.add_argument("--tolerance", type=float, default=0.5,
                        help="seconds a detection may lie outside the labelled span (0.5)")
    parser.add_argument("--title", default=None, help="title of the figures")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="files evaluated in parallel processes (1)")
    parser.add_argument("--cascade", choices=["on", "off"], default=None,
                        help="run the two-stage cascade or not (default: as the bundle's "
                             "kws.json streaming.cascade says); compare recall and false alarms "
                             "with and without")
    parser.add_argument("--precision", default="",
                        help="encoder precision (default: the bundle's kws.json "
                             "streaming.precision; e.g. fp32 to compare with)")


def _thresholds(args: argparse.Namespace, bundle) -> dict[str, float]:
    out: dict[str, float] = {}
    if args.sensitivity:
        from kwsd.config import ConfigError
        from kwsd.engine.decision import sensitivity_thresholds

        try:
            out.update(sensitivity_thresholds(bundle, args.sensitivity))
        except ConfigError as exc:
            raise SystemExit(f"kwsd eval: {args.model}: {exc}") from None
    for item in args.threshold:
        kw, sep, value = item.rpartition("=")
        if not sep or kw not in bundle.keywords:
            raise SystemExit(f"kwsd eval: --threshold {item!r}: expected KEYWORD=VALUE with a "
                             f"keyword of the model ({', '.join(bundle.keywords)})")
        try:
            out[kw] = float(value)
        except ValueError:
            raise SystemExit(f"kwsd eval: --threshold {item!r}: {value!r} is not a number"
                             ) from None
    return out


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import numpy as np
    import torch

    from kwsd.engine.pipeline import PipelineSettings
    from kwsd.evaluation.manifest import ManifestError, read_eval_manifest
    from kwsd.evaluation.report import (
        format_table,
        plot_confusion,
        plot_det,
        plot_fa_vs_threshold,
    )
    from kwsd.evaluation.runner import run_files
    from kwsd.evaluation.scoring import det_curves, score
    from kwsd.events import round_score
    from kwsd.model.bundle import ModelBundleError, load_bundle

    torch.set_num_threads(max(1, args.threads))
    problems: list[str] = []
    try:
        items = read_eval_manifest(args.manifest, problems)
        bundle = load_bundle(args.model)
    except (ManifestError, ModelBundleError) as exc:
        print(f"kwsd eval: {exc}", file=sys.stderr)
        return 2
    for msg in problems:  # a mislabelled row is left out (its file too), the rest is scored
        log.error("manifest row left out: %s", msg)
    from kwsd.model.cascade import CascadeError, cascade_active

    try:
        cascade_on = cascade_active(bundle.cascade, args.cascade or "")
    except CascadeError as exc:
        print(f"kwsd eval: {args.model}: {exc}", file=sys.stderr)
        return 2
    settings = PipelineSettings(cascade="on" if cascade_on else "off",
                                precision=args.precision)
    try:
        settings.precision_for(bundle)
    except Exception as exc:  # noqa: BLE001 - ConfigError naming engine.precision
        print(f"kwsd eval: --precision: {exc}", file=sys.stderr)
        return 2
    overrides = _thresholds(args, bundle)
    if overrides:
        settings = dataclasses.replace(settings, decision=dataclasses.replace(
            settings.decision, thresholds={**settings.decision.thresholds, **overrides}))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf-8") as out:
        def write(result) -> None:
            for det in result.detections:
                out.write(json.dumps(det.to_dict()) + "\n")
            out.flush()

        files = list({i.file: i.path for i in items}.items())  # a file once, however many rows
        run = run_files(bundle, files, settings,
                        progress=not args.no_progress, on_result=write, jobs=args.jobs)
    keywords = list(bundle.keywords)
    result = score(items, run.detections, run.durations, keywords, args.tolerance)
    print(f"model {bundle.model_id} (cascade {'on' if cascade_on else 'off'}): "
          f"{len(run.files)} files evaluated, {len(run.errors)} unreadable ({args.manifest})")
    for msg in problems:
        print(f"  row left out: {msg}")
    for name, msg in run.errors.items():
        print(f"  unreadable ({name}): {msg}" if name not in msg else f"  unreadable: {msg}")
    print(format_table(result))
    if args.plots:
        args.plots.mkdir(parents=True, exist_ok=True)
        title = args.title or f"{bundle.model_id} on {args.manifest.name}"
        # every keyword's false alarms (also those the set has no positives of), so that
        # thresholds can be chosen again from summary.json alone, as calibration does
        curves = det_curves(items, run.traces, run.durations, keywords,
                            tolerance_s=args.tolerance,
                            refractory_s=settings.decision.refractory_ms / 1000,
                            release_ratio=settings.decision.release_ratio,
                            gap_s=1.5 * bundle.hop_samples / bundle.sample_rate,
                            all_keywords=True)
        labelled = {kw: c for kw, c in curves.items() if c.n_positives}
        operating = {kw: (s.false_alarms / result.negative_hours if result.negative_hours else 0,
                          1 - ((s.alone_hits + s.sentence_hits) / max(1, s.alone + s.sentence)))
                     for kw, s in result.per_keyword.items() if s.alone + s.sentence}
        if labelled:
            plot_det(labelled, args.plots / "det.png", title, operating)
        else:  # no keyword in the set: false alarms against the threshold instead
            used = {**bundle.thresholds, **overrides}
            plot_fa_vs_threshold(curves, args.plots / "fa.png", title, used)
        plot_confusion(result, keywords, args.plots / "confusion.png", title)
        summary = result.summary()
        summary.update({
            "model": bundle.model_id, "manifest": str(args.manifest),
            "cascade": "on" if cascade_on else "off",
            "thresholds": {k: float(v) for k, v in {**bundle.thresholds, **overrides}.items()},
            "unreadable": run.errors, "rows_left_out": problems,
            "rtf_mean": (sum(f.rtf for f in run.files) / len(run.files)) if run.files else None,
            "det": {kw: {"thresholds": [round_score(t) for t in c.thresholds],
                         "miss_rate": [None if np.isnan(v) else round(float(v), 4)
                                       for v in c.miss_rate],
                         "fa_per_hour": c.fa_per_hour.round(3).tolist(),
                         "false_alarms": c.false_alarms.tolist(),
                         "n_positives": c.n_positives}
                    for kw, c in curves.items()},
            "outcomes": result.outcomes,
        })
        (args.plots / "summary.json").write_text(json.dumps(summary, indent=1))
        print(f"figures and summary.json in {args.plots}/")
    print(f"detections: {args.out}")
    return 0
