"""Synthetic voices that no head trained on, as an evaluation set to choose models on.

The held-out test voices measure a model; choosing between models on them would wear them
out, and keywords that no real recording says have no other synthetic yardstick. Voices the
corpus rendered but the training manifest leaves out (festival's held-out speakers:
scripts/train-demo.sh keeps festival to its training voices) can be that yardstick. The set is
written like the held-out test set (same writer, the training run's augmenter), and a voice
the training manifest holds in any split is refused: it would be trained on or be the test.

    python -m kwsd.head_training.voice_set --corpus CORPUS.csv --train-manifest TRAIN.csv \
        --voices festival-ked_diphone,festival-us3_mbrola --out DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from kwsd.head_training.dataset import DatasetError, read_corpus_manifest
from kwsd.head_training.heldout import write_heldout_set
from kwsd.head_training.train import training_augmenter


class VoiceSetError(ValueError):
    """A voice that cannot serve: named, with the reason."""


def write_voice_set(corpus: Path, train_manifest: Path, voices: list[str], out: Path,
                    seed: int = 0) -> Path:
    """Write the clips of `voices` from `corpus` as an eval manifest under `out`; returns it."""
    if not voices:
        raise VoiceSetError("no voices given")
    train_clips, keywords = read_corpus_manifest(train_manifest)
    known = sorted(set(voices) & {c.voice for c in train_clips})
    if known:
        raise VoiceSetError(f"{', '.join(known)}: in {train_manifest}, so trained on or the "
                            "test set; give voices the training manifest leaves out")
    clips = [c for c in read_corpus_manifest(corpus, keywords)[0] if c.voice in voices]
    missing = sorted(set(voices) - {c.voice for c in clips})
    if missing:
        raise VoiceSetError(f"{corpus}: no clips of {', '.join(missing)}")
    augmenter = training_augmenter(train_clips, True, seed)
    return write_heldout_set(clips, out, augmenter, 1, seed + 101)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kwsd.head_training.voice_set",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, required=True,
                        help="the rendered corpus manifest (kwsd.corpus.render)")
    parser.add_argument("--train-manifest", type=Path, required=True,
                        help="the manifest the head trains on (its voices are refused)")
    parser.add_argument("--voices", required=True, help="comma-separated voice names")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0, help="the training run's seed")
    args = parser.parse_args(argv)
    voices = [v.strip() for v in args.voices.split(",") if v.strip()]
    try:
        print(write_voice_set(args.corpus, args.train_manifest, voices, args.out, args.seed))
    except (VoiceSetError, DatasetError) as exc:
        print(f"voice_set: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
