"""Real recordings as a training corpus: `real-train`'s manifests in the corpus manifest format.

`kwsd train` reads one manifest format (the synthetic corpus's). This turns the real recordings
that may be trained on (`../shared/data/real-train`: WUW-II callers saying the keywords with
labelled times, other real speech, real noise) into that format, so real and synthetic clips
go through the same windows, augmentation, features and calibration:

    python -m kwsd.corpus.real --data ../shared/data/real-train --out /work/kwsd-data/real

Whole speakers are held out (`split=val`) by a stable hash of the speaker id: they give the
validation windows and the real negatives the thresholds are calibrated on. A clip is used only
when its transcription agrees with its label: a keyword clip must say its keyword once and no
other keyword (some sentences also say "computer", unlabelled), a negative must say none. Clips
that fail are counted, never guessed at. Never point this at evaluation data (`real-dev`).
"""

from __future__ import annotations

import argparse
import csv
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from kwsd.corpus.render import MANIFEST_FIELDS, SILENCE, UNKNOWN
from kwsd.corpus.texts import KEYWORDS
from kwsd.evaluation.manifest import count_keyword
from kwsd.head_training.dataset import speaker_held_out

REAL_ENGINE = "real"  # the manifest's `engine` for real recordings (calibration picks these)
WUW_VAL_PERCENT = 12.5  # one caller in eight
SPEECH_VAL_PERCENT = 30.0  # of the other real speech: calibration hours of real negatives


@dataclass
class RealCorpus:
    rows: list[dict]
    skipped: Counter


def _keywords_said(text: str) -> Counter:
    return Counter({kw: n for kw in KEYWORDS if (n := count_keyword(text, kw))})


def _row(file: str, label: str, start: str, end: str, voice: str, text: str, kind: str,
         duration: str, split: str) -> dict:
    return {"file": file, "label": label, "kw_start_s": start, "kw_end_s": end,
            "engine": REAL_ENGINE, "voice": voice, "speaker": voice, "text": text, "kind": kind,
            "variant": "", "duration_s": duration, "split": split}


def wuw_rows(manifest: Path, out_dir: Path, skipped: Counter) -> list[dict]:
    """WUW-II callers: keywords alone and in sentences, names as negatives."""
    rows = []
    with manifest.open(newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            speaker = r["speaker"]
            split = "val" if speaker_held_out(speaker, WUW_VAL_PERCENT) else "train"
            path = os.path.relpath(manifest.parent / r["file"], out_dir)
            said = _keywords_said(r["transcription"])
            kw = r["keyword"].strip()
            if not kw:
                if said:
                    skipped["negative says a keyword"] += 1
                    continue
                rows.append(_row(path, UNKNOWN, "", "", speaker, r["transcription"], "sentence",
                                 r["duration_s"], split))
                continue
            start, end = float(r["kw_start_s"] or "nan"), float(r["kw_end_s"] or "nan")
            if not end > start:
                skipped["broken keyword times"] += 1
                continue
            if said != Counter({kw: 1}):
                skipped["transcription disagrees with the label"] += 1
                continue
            kind = "keyword_sentence" if r["in_sentence"] == "True" else "keyword"
            rows.append(_row(path, kw, f"{start:.3f}", f"{end:.3f}", speaker,
                             r["transcription"], kind, r["duration_s"], split))
    return rows


def speech_rows(manifest: Path, out_dir: Path, skipped: Counter) -> list[dict]:
    """Other real speech (negatives) and real noise (`_silence_`). Files without a speaker are
    split by file, so a speaker never known is at least not split across windows."""
    rows = []
    with manifest.open(newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            if r.get("keyword"):
                skipped["speech row with a keyword"] += 1
                continue
            if _keywords_said(r.get("text", "")):
                skipped["negative says a keyword"] += 1
                continue
            who = r.get("speaker") or r["file"]
            split = "val" if speaker_held_out(who, SPEECH_VAL_PERCENT) else "train"
            label = SILENCE if r["kind"] == "noise" else UNKNOWN
            rows.append(_row(os.path.relpath(manifest.parent / r["file"], out_dir), label, "", "",
                             who, r.get("text", ""), "noise" if label == SILENCE else "speech",
                             r["duration_s"], split))
    return rows


def build(data: Path, out_dir: Path) -> RealCorpus:
    skipped: Counter = Counter()
    rows = []
    wuw, speech = data / "wuw-train.csv", data / "speech.csv"
    if not wuw.is_file() and not speech.is_file():
        raise SystemExit(f"{data}: neither wuw-train.csv nor speech.csv (is it real-train?)")
    if "real-dev" in data.resolve().parts:
        raise SystemExit(f"{data}: real-dev is for evaluation only; never train on it")
    if wuw.is_file():
        rows += wuw_rows(wuw, out_dir, skipped)
    if speech.is_file():
        rows += speech_rows(speech, out_dir, skipped)
    return RealCorpus(rows, skipped)


def write(corpus: RealCorpus, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "manifest.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_FIELDS)
        writer.writeheader()
        writer.writerows(corpus.rows)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kwsd.corpus.real", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="the real-train folder")
    p.add_argument("--out", type=Path, required=True, help="folder for manifest.csv")
    args = p.parse_args(argv)
    corpus = build(args.data, args.out)
    path = write(corpus, args.out)
    counts = Counter((r["split"], r["label"]) for r in corpus.rows)
    speakers = {s: len({r["speaker"] for r in corpus.rows if r["split"] == s})
                for s in ("train", "val")}
    print(f"{path}: {len(corpus.rows)} clips, speakers {speakers}")
    for (split, label), n in sorted(counts.items()):
        print(f"  {split:5s} {label:14s} {n}")
    for why, n in corpus.skipped.most_common():
        print(f"  skipped: {n} ({why})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
