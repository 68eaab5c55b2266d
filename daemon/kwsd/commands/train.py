"""`kwsd train`: train a keyword model bundle.

    kwsd train --data /work/kwsd-data/corpus/manifest.csv --encoder /work/kwsd-data/demo-encoder \\
        --out models/demo --workdir /work/kwsd-data/train
    kwsd train --data ~/speech_commands_v0.02 --keywords yes,no,stop --encoder ~/distilhubert \\
        --out my-model

--data is a synthetic-corpus manifest (CSV) or a folder in Google Speech Commands layout.
With a frozen encoder (default) the window features are computed once and cached in
--workdir; `--finetune top|all` also trains the encoder's last layer / the whole encoder.
Interrupted runs continue with --resume (same arguments). `--choose-precision` ends with
`kwsd bench --bundle OUT --choose`: every encoder precision measured on real-train speech, the
fastest whose decisions match fp32's recorded in kws.json `streaming.precision`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

HELP = "train a keyword model bundle"
log = logging.getLogger("kwsd.train")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=Path,
                        help="corpus manifest CSV, or a Speech Commands-layout folder")
    parser.add_argument("--out", required=True, type=Path, help="bundle folder to write")
    parser.add_argument("--encoder", default="random",
                        help="encoder folder (HF layout, or a bundle), or 'random' "
                             "(untrained demo-size encoder, for tests)")
    parser.add_argument("--keywords", default=None,
                        help="comma-separated keywords (default: every keyword label in the "
                             "data); other labels become _unknown_")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="feature cache, checkpoints, held-out set (default: OUT.work)")
    parser.add_argument("--finetune", choices=["none", "top", "all"], default="none",
                        help="also train the encoder's top layer or all of it (slow on CPU)")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--class-weight-power", type=_non_negative, default=0.5,
                        help="keyword windows weigh (1/frequency)^P in the loss (0: equal)")
    parser.add_argument("--label-smoothing", type=_fraction, default=0.0,
                        help="cross-entropy label smoothing in [0, 1) (0: one-hot targets)")
    parser.add_argument("--copies", type=int, default=1,
                        help="augmented passes over the training clips (1)")
    parser.add_argument("--real-repeats", type=_positive_int, default=1, metavar="N",
                        help="real recordings (kwsd.corpus.real) get N times the augmented "
                             "passes of synthetic clips, so real voices weigh more (1)")
    parser.add_argument("--synthetic-only-repeats", type=_positive_int, default=1, metavar="N",
                        help="synthetic clips of keywords that no real recording says get N "
                             "times the passes, so those keywords keep their share beside "
                             "--real-repeats (1)")
    parser.add_argument("--real-negative-repeats", type=_positive_int, default=None, metavar="N",
                        help="real recordings that say no keyword get N times the passes "
                             "instead (default: as --real-repeats)")
    parser.add_argument("--synthetic-negative-repeats", type=_positive_int, default=1,
                        metavar="N",
                        help="synthetic clips that say no keyword (sentences, words, partial "
                             "and confusable words; not noise) get N times the passes, so "
                             "they keep their weight beside --real-negative-repeats (1)")
    parser.add_argument("--confusable-repeats", type=_positive_int, default=None, metavar="N",
                        help="of those, the confusable and partial words (\"compute\", "
                             "\"puter\") get N times the passes instead, so the near-misses "
                             "of a keyword weigh more (default: as "
                             "--synthetic-negative-repeats)")
    parser.add_argument("--average-fits", type=_positive_int, default=1, metavar="N",
                        help="fit the head N times from the same start in other batch orders "
                             "and ship the average of their weights: less a draw of one "
                             "order (1)")
    parser.add_argument("--heldout-copies", type=_positive_int, default=1, metavar="K",
                        help="compose the calibration set K times (each with its own "
                             "augmentation and stream order) and set thresholds on all K "
                             "pooled: K times the negative hours behind each threshold (1)")
    parser.add_argument("--test-copies", type=_positive_int, default=1, metavar="K",
                        help="compose the test set (held-out voices' figures) K times, so "
                             "that a keyword's hits at a few false alarms rest on K times the "
                             "negative hours, not on two or three events (1)")
    parser.add_argument("--drop-near-homophones", action="store_true",
                        help="leave training negatives that say a near-homophone of a keyword "
                             "(\"blue barry\": kwsd.corpus.texts.NEAR_HOMOPHONES) out of the "
                             "head's training; held-out sets keep them")
    parser.add_argument("--heldout-max-clips", type=int, default=1500,
                        help="held-out clips used for calibration and figures (1500; 0 = all)")
    parser.add_argument("--no-augment", action="store_true", help="train on clean audio only")
    parser.add_argument("--window-ms", type=int, default=1000)
    parser.add_argument("--hop-ms", type=int, default=200)
    parser.add_argument("--mlp-dim", type=int, default=256)
    parser.add_argument("--temporal-layers", type=int, default=0,
                        help="dilated convolutions over the window's frames in the head, so "
                             "that it hears the order of sounds (0: none)")
    parser.add_argument("--name", default="kws", help="model name in kws.json")
    parser.add_argument("--version", default="0", help="model version in kws.json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-clips", type=int, default=None,
                        help="use at most this many clips per split (smoke runs)")
    parser.add_argument("--max-windows", type=int, default=None,
                        help="encode every keyword window but only a random sample of the "
                             "others, N windows in all (frozen encoder; bounds the time)")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after N steps")
    parser.add_argument("--calibrate-on", choices=["heldout", "real"], default="heldout",
                        help="negatives the thresholds are set on: every held-out negative "
                             "(default), or only real recordings (kwsd.corpus.real manifests)")
    parser.add_argument("--fa-targets", type=_fa_targets, default=None,
                        metavar="low=0.2,medium=1,high=5",
                        help="false alarms per hour and keyword allowed on the calibration "
                             "negatives, per sensitivity (default: low=0.2,medium=1,high=5)")
    parser.add_argument("--smoothing-ms", type=int, default=0, metavar="MS",
                        help="the decision averages the posteriors of windows ending within "
                             "MS (400 = this window and the one before at a 200 ms hop); the "
                             "thresholds are calibrated with it and kws.json keeps it (0)")
    parser.add_argument("--no-calibrate", action="store_true",
                        help="keep thresholds at 0.5 (no held-out pass)")
    parser.add_argument("--no-final-eval", action="store_true",
                        help="skip the held-out evaluation at the chosen thresholds")
    parser.add_argument("--resume", action="store_true",
                        help="continue an interrupted run from its last epoch checkpoint")
    parser.add_argument("--prepare-only", action="store_true",
                        help="only build the encoder-independent caches (augmented window "
                             "audio, held-out set), e.g. while the encoder is still training")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for the encoder and the head (1)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="processes for the held-out pipeline passes (1)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--choose-precision", action="store_true",
                        help="after training, measure every encoder precision on real speech "
                             "(../shared/data/real-train) and record the fastest whose "
                             "decisions match fp32's in kws.json, as `kwsd bench --bundle OUT "
                             "--choose` does")
    parser.add_argument("--precision-speech", type=Path, default=None, metavar="REAL_TRAIN",
                        help="--choose-precision: recordings in real-train layout (default "
                             "../shared/data/real-train; never real-dev)")


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0.0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _fa_targets(text: str) -> dict[str, float]:
    out = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r}: expected NAME=FA_PER_HOUR") from None
        if out[name.strip()] < 0 or not name.strip():
            raise argparse.ArgumentTypeError(f"{part!r}: expected NAME=FA_PER_HOUR >= 0")
    if "medium" not in out:
        raise argparse.ArgumentTypeError("the targets must name 'medium' (the default)")
    return out


def run(args: argparse.Namespace) -> int:
    import torch

    from kwsd.head_training.dataset import DatasetError
    from kwsd.head_training.features import CacheSpaceError
    from kwsd.head_training.fit import FitConfig
    from kwsd.head_training.train import TrainConfig, TrainError, train
    from kwsd.model.bundle import ModelBundleError

    if args.choose_precision:  # refuse evaluation data now, not after hours of training
        from kwsd.evaluation.precision import PrecisionChoiceError, refuse_evaluation_data

        try:
            refuse_evaluation_data(args.precision_speech or Path("."))
        except PrecisionChoiceError as exc:
            print(f"kwsd train: --precision-speech: {exc}", file=sys.stderr)
            return 2
    torch.set_num_threads(max(1, args.threads))
    keywords = [k.strip() for k in args.keywords.split(",") if k.strip()] if args.keywords \
        else None
    cfg = TrainConfig(
        data=args.data, out=args.out,
        workdir=args.workdir or args.out.with_name(args.out.name + ".work"),
        encoder=args.encoder, keywords=keywords, name=args.name, version=args.version,
        window_ms=args.window_ms, hop_ms=args.hop_ms, copies=args.copies,
        real_repeats=args.real_repeats,
        synthetic_only_repeats=args.synthetic_only_repeats,
        real_negative_repeats=args.real_negative_repeats,
        synthetic_negative_repeats=args.synthetic_negative_repeats,
        confusable_repeats=args.confusable_repeats, average_fits=args.average_fits,
        heldout_copies=args.heldout_copies, test_copies=args.test_copies,
        drop_near_homophones=args.drop_near_homophones,
        heldout_max_clips=args.heldout_max_clips or None, finetune=args.finetune,
        fit=FitConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      class_weight_power=args.class_weight_power,
                      label_smoothing=args.label_smoothing,
                      max_steps=args.max_steps),
        max_clips=args.max_clips, max_windows=args.max_windows or None, augment=not args.no_augment,
        calibrate=not args.no_calibrate, final_eval=not args.no_final_eval,
        resume=args.resume, prepare_only=args.prepare_only, progress=not args.no_progress,
        mlp_dim=args.mlp_dim, temporal_layers=args.temporal_layers,
        smoothing_ms=args.smoothing_ms, seed=args.seed,
        jobs=args.jobs, calibrate_on=args.calibrate_on, fa_targets=args.fa_targets)
    try:
        out = train(cfg)
    except (TrainError, DatasetError, CacheSpaceError, ModelBundleError, FileNotFoundError,
            ValueError) as exc:
        print(f"kwsd train: {exc}", file=sys.stderr)
        return 2
    print("prepared (no bundle written: --prepare-only)" if out is None
          else f"bundle written: {out}")
    if out is not None and args.choose_precision:
        from kwsd.evaluation.precision import (
            DEFAULT_REAL_TRAIN,
            choose_for_bundle,
            format_choice,
        )

        speech = args.precision_speech or DEFAULT_REAL_TRAIN
        try:
            choice = choose_for_bundle(Path(out), real_train=speech, write=True,
                                       command=f"kwsd train ... --out {out} --choose-precision "
                                               f"--precision-speech {speech}")
        except (ValueError, OSError) as exc:  # unreadable audio, a bad bundle
            print(f"kwsd train: choosing the precision failed: {exc}", file=sys.stderr)
            return 2
        print(format_choice(choice))
        print(f"precision {choice['chosen']!r} recorded in {Path(out) / 'kws.json'}")
    return 0
