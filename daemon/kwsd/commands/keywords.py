"""`kwsd keywords list|remove NAME`: the keywords you enrolled."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "list or remove enrolled keywords"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["list", "remove"])
    parser.add_argument("name", nargs="?", help="the keyword to remove")
    parser.add_argument("--dir", type=Path, default=None, help="keywords directory")
    parser.add_argument("--config", default=None, help="kwsd.toml (for the model path)")
    parser.add_argument("--model", type=Path, default=None, help="model bundle folder")


def run(args: argparse.Namespace) -> int:
    from kwsd.enrollment import store

    if args.action == "remove":
        if not args.name:
            print("kwsd keywords remove: which keyword? (kwsd keywords list shows them)")
            return 2
        try:
            store.remove(args.name, args.dir)
        except store.StoreError as exc:
            print(f"kwsd keywords: {exc}")
            return 1
        print(f"removed {args.name!r}")
        return 0
    from kwsd.commands.enroll import model_path
    from kwsd.enrollment.features import encoder_id
    from kwsd.model.bundle import ModelBundleError, load_bundle

    try:
        keywords = store.list_keywords(args.dir)
    except store.StoreError as exc:
        print(f"kwsd keywords: {exc}")
        return 1
    try:
        current = encoder_id(load_bundle(model_path(args)))
    except (ModelBundleError, OSError):
        current = ""
    if not keywords:
        print(f"no enrolled keywords in {args.dir or store.keywords_dir()}")
        return 0
    for kw in keywords:
        state = "ok" if kw.encoder_id == current else \
            f"made for another encoder ({kw.encoder_id}): kwsd enroll {kw.name!r} --again"
        print(f"{kw.name:<24} threshold {kw.threshold:.3f}  {len(kw.templates)} template(s)  "
              f"{state}")
    return 0
