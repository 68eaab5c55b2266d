"""`kwsd cascade`: make, measure and record a bundle's two-stage cascade.

    kwsd cascade fit --bundle DIR --windows WORK/cache/audio-TRAIN \
        [--val-windows WORK/cache/audio-VAL] [--workdir DIR] \
        [--real-train ../shared/data/real-train] [--hold 2] [--max-recall-loss 0.01]

`fit` trains stage one on the head trainer's window audio (kwsd.head_training.cascade; reused
from DIR/stage-one.safetensors unless --retrain), chooses its threshold on real-train's held-out
speakers for the stated recall loss (kwsd.head_training.cascade_threshold), checks the choice
with a real cascade run, measures stage one's pass rate on the real speech `kwsd bench` streams,
and writes kws.json `streaming.cascade`. `kwsd cascade show --bundle DIR` prints what is there.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

HELP = "fit or show a bundle's two-stage cascade (cheap stage one, encoder on demand)"
log = logging.getLogger("kwsd.cascade")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="stage", required=True, metavar="STAGE")
    p = sub.add_parser("fit", help="train stage one, choose its threshold, write kws.json")
    p.add_argument("--bundle", type=Path, required=True, help="model bundle folder (written)")
    p.add_argument("--windows", type=Path, default=None,
                   help="the head trainer's window-audio cache of the training split "
                        "(WORKDIR/cache/audio-*, the large one); needed unless the bundle "
                        "already has a stage one and --retrain is not given")
    p.add_argument("--val-windows", type=Path, default=None,
                   help="window-audio cache of the validation split (the small audio-*)")
    p.add_argument("--teacher-states", type=Path, default=None,
                   help="the head trainer's hidden-state cache of --windows for THIS bundle's "
                        "encoder (WORKDIR/cache/states-*): stage one also learns from the "
                        "bundle's head (distillation); checked against the encoder")
    p.add_argument("--workdir", type=Path, default=Path("cascade-work"),
                   help="folder for cached log-mel features (cascade-work)")
    p.add_argument("--real-train", type=Path, default=Path("../shared/data/real-train"),
                   help="real-train (its held-out speakers choose the threshold; never real-dev)")
    p.add_argument("--speech-seconds", type=float, default=600.0,
                   help="seconds of held-out other real speech in the measurement set (600)")
    p.add_argument("--hold", default="1,2",
                   help="windows after a pass that also run the encoder; a comma list tries "
                        "each and keeps the one with the lowest pass rate (1,2)")
    p.add_argument("--max-recall-loss", type=float, default=0.01,
                   help="recall the cascade may lose on the measurement set, at every "
                        "threshold set of the bundle (0.01 = 1 point)")
    p.add_argument("--epochs", type=int, default=4, help="stage-one training epochs (4)")
    p.add_argument("--retrain", action="store_true",
                   help="train stage one again even if the bundle has one")
    p.add_argument("--disable", action="store_true",
                   help="record the cascade but leave it off by default (enabled: false)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1)")
    s = sub.add_parser("show", help="print the bundle's kws.json streaming.cascade")
    s.add_argument("--bundle", type=Path, required=True)


def run(args: argparse.Namespace) -> int:
    if args.stage == "show":
        meta = json.loads((args.bundle / "kws.json").read_text(encoding="utf-8"))
        cascade = (meta.get("streaming") or {}).get("cascade")
        if cascade is None:
            print(f"{args.bundle}: no cascade (kwsd cascade fit makes one)")
            return 1
        brief = {k: v for k, v in cascade.items()
                 if k not in ("fit", "candidates", "pass_mask_real_speech", "rule")}
        print(json.dumps(brief, indent=1))
        return 0
    try:
        return _fit(args)
    except Exception as exc:  # noqa: BLE001 - one clear line for the user, details in the log
        from kwsd.head_training.cascade import WindowCacheError
        from kwsd.model.bundle import ModelBundleError
        from kwsd.model.cascade import CascadeError

        if isinstance(exc, WindowCacheError | ModelBundleError | CascadeError | OSError):
            print(f"kwsd cascade fit: {exc}", file=sys.stderr)
            return 2
        raise


def _fit(args: argparse.Namespace) -> int:
    import torch

    from kwsd.head_training.cascade import (
        StageOneFit,
        open_window_audio,
        teacher_posteriors,
        train_stage_one,
    )
    from kwsd.head_training.cascade_threshold import (
        choose_threshold,
        heldout_set,
        record,
        record_cascade,
        speech_pass_rate,
        verify,
    )
    from kwsd.model.bundle import load_bundle
    from kwsd.model.cascade import (
        STAGE_ONE_FILE,
        Cascade,
        CascadeSettings,
        load_stage_one,
        save_stage_one,
    )

    def say(msg: str) -> None:
        print(f"[cascade {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    torch.set_num_threads(max(1, args.threads))
    t0 = time.time()
    bundle = load_bundle(args.bundle, with_cascade=not args.retrain)
    n_labels = len(bundle.labels)
    path = args.bundle / STAGE_ONE_FILE
    fit_info: dict = {}
    if path.is_file() and not args.retrain:
        say(f"stage one: reusing {path} (--retrain to train it again)")
        model = load_stage_one(path, n_labels)
        fit_info["stage_one"] = "reused"
    else:
        if args.windows is None:
            print("kwsd cascade fit: --windows WORKDIR/cache/audio-* is needed to train stage "
                  "one", file=sys.stderr)
            return 2
        train = open_window_audio(args.windows, bundle.window_samples, n_labels)
        val = (open_window_audio(args.val_windows, bundle.window_samples, n_labels)
               if args.val_windows else None)
        teacher = None
        if args.teacher_states is not None:
            say(f"teacher: the bundle's head on {args.teacher_states}")
            teacher = teacher_posteriors(bundle, args.teacher_states, train, args.workdir)
        say(f"stage one: training on {len(train.labels)} windows ({args.windows})")
        model, hist = train_stage_one(train, val, n_labels, args.workdir,
                                      StageOneFit(epochs=args.epochs), teacher=teacher)
        save_stage_one(model, path)
        fit_info["stage_one"] = {"windows": str(args.windows),
                                 "val_windows": str(args.val_windows or ""),
                                 "teacher_states": str(args.teacher_states or ""),
                                 "epochs": args.epochs, **hist}
        say(f"stage one written to {path}")
    try:
        holds = sorted({int(h) for h in str(args.hold).split(",") if h.strip()})
    except ValueError:
        holds = []
    if not holds or min(holds) < 0 or max(holds) > 50:
        print(f"kwsd cascade fit: --hold {args.hold!r}: integers in [0, 50], comma separated",
              file=sys.stderr)
        return 2
    placeholder = CascadeSettings(True, STAGE_ONE_FILE, 0.5, holds[0])
    bundle.cascade = Cascade(placeholder, model, len(bundle.keywords))
    mset = heldout_set(args.real_train, args.speech_seconds)
    say(f"measurement set: {json.dumps(mset.describe)}")
    rec = record(bundle, mset, progress=say)
    say(f"recorded {len(rec.calls)} files in {rec.cpu_s:.0f} CPU-s")
    choices = []
    for hold in holds:
        say(f"hold {hold}:")
        try:
            choices.append(choose_threshold(bundle, mset, rec, hold=hold,
                                            max_recall_loss=args.max_recall_loss,
                                            progress=say))
        except RuntimeError as exc:
            say(f"hold {hold}: {exc}")
    if not choices:
        print("kwsd cascade fit: no threshold keeps the recall loss within "
              f"{args.max_recall_loss:g} at any hold ({args.hold})", file=sys.stderr)
        return 1
    choice = min(choices, key=lambda c: (c["pass_rate_heldout"], -c["hold_hops"]))
    choice["holds_tried"] = {c["hold_hops"]: {"threshold": c["threshold"],
                                              "pass_rate_heldout": c["pass_rate_heldout"]}
                             for c in choices}
    hold = choice["hold_hops"]
    bundle.cascade = Cascade(CascadeSettings(True, STAGE_ONE_FILE, choice["threshold"],
                                             hold), model, len(bundle.keywords))
    check = verify(bundle, mset, choice)
    say(f"check with the cascade on: {check}")
    speech = speech_pass_rate(bundle, args.bundle, args.real_train)
    say(f"pass rate on the bench's real speech: {speech['pass_rate']:.3f}")
    command = ("kwsd cascade fit --bundle " + str(args.bundle)
               + (f" --windows {args.windows}" if args.windows else "")
               + (f" --val-windows {args.val_windows}" if args.val_windows else "")
               + (f" --teacher-states {args.teacher_states}" if args.teacher_states else "")
               + (f" --epochs {args.epochs}" if args.windows else "")
               + (" --retrain" if args.retrain else "")
               + f" --hold {args.hold} --max-recall-loss {args.max_recall_loss:g}")
    record_cascade(args.bundle, choice, check, speech, mset.describe, fit_info,
                   enabled=not args.disable, command=command, seconds=time.time() - t0)
    rl = ", ".join(f"{k} {100 * v:+.2f} points" for k, v in choice["recall_loss"].items())
    print(f"stage-one threshold {choice['threshold']:.4g}, hold {hold} hops: pass rate "
          f"{choice['pass_rate_heldout']:.3f} on held-out real-train, "
          f"{speech['pass_rate']:.3f} on the bench's real speech; recall loss {rl}; written to "
          f"{args.bundle / 'kws.json'} (streaming.cascade, enabled: {not args.disable})")
    return 0
