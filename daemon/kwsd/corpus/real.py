"""Real recordings as a training corpus: `real-train`'s manifests in the corpus manifest format.

`kwsd train` reads one manifest format (the synthetic corpus's). This turns the real recordings
that may be trained on (`../shared/data/real-train`: WUW-II callers saying the keywords with
labelled times, other real speech, real noise) into that format, so real and synthetic clips
go through the same windows, augmentation, features and calibration:

    python -m kwsd.corpus.real --data ../shared/data/real-train --out /work/kwsd-data/real

Whole speakers are held out (`split=val`) by a stable hash of the speaker id: they give the
validation windows and the real negatives the thresholds are calibrated on. A clip is used only
when its transcription agrees with its label: a keyword clip must say its keyword once and no
other keyword, a negative must say none. Clips that fail are counted, never guessed at.

With `--split-second-keyword`, the sentences that also say "computer", unlabelled (the only real
recordings of a keyword with no other real training data), are used too: forced alignment of
the transcription finds both words; when it puts the labelled keyword where the hand label says,
the sentence is cut between the two and each part becomes a keyword clip of its own
(`segments/`, 16 kHz WAV beside the manifest). Off by default: the shipped head was trained
without them (kwsd-demo-19, with them, was not shipped: docs/TEAM-NOTES.md, session 22).
Never point this at evaluation data (`real-dev`).
"""

from __future__ import annotations

import argparse
import csv
import os
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from kwsd.audio.audiofile import read_audio_16k, write_wav_16k
from kwsd.audio.chunk import SAMPLE_RATE
from kwsd.corpus import align
from kwsd.corpus.render import MANIFEST_FIELDS, SILENCE, UNKNOWN
from kwsd.corpus.texts import KEYWORDS
from kwsd.evaluation.manifest import count_keyword, strip_noise_tags
from kwsd.head_training.dataset import speaker_held_out

REAL_ENGINE = "real"  # the manifest's `engine` for real recordings (calibration picks these)
WUW_VAL_PERCENT = 12.5  # one caller in eight
SPEECH_VAL_PERCENT = 30.0  # of the other real speech: calibration hours of real negatives
SECOND_KEYWORD = "computer"  # said unlabelled in a few WUW sentences (real-train README)
MAX_LABEL_DRIFT_S = 0.4  # aligned start of the labelled keyword against its hand label


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


def wuw_rows(manifest: Path, out_dir: Path, skipped: Counter,
             split_second_keyword: bool = False) -> list[dict]:
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
            if (split_second_keyword and kw != SECOND_KEYWORD
                    and said == Counter({kw: 1, SECOND_KEYWORD: 1})):
                parts = split_at_second_keyword(manifest.parent / r["file"], r, out_dir, split)
                if parts is None:
                    skipped["second keyword not aligned"] += 1
                else:
                    rows += parts
                continue
            if said != Counter({kw: 1}):
                skipped["transcription disagrees with the label"] += 1
                continue
            kind = "keyword_sentence" if r["in_sentence"] == "True" else "keyword"
            rows.append(_row(path, kw, f"{start:.3f}", f"{end:.3f}", speaker,
                             r["transcription"], kind, r["duration_s"], split))
    return rows


def _spoken_words(transcription: str) -> list[str]:
    """The words as said: no noise tags, ((unsure)) marks or fillers; a keyword written joined
    ("ThinkEngine", "Onword") in KEYWORDS' spoken spelling."""
    text = strip_noise_tags(transcription).replace("((", "").replace("))", "")
    for label, spellings in KEYWORDS.items():
        text = re.sub(f"(?i){label.replace(' ', '')}", spellings[0], text)
    text = re.sub(r"(?i)goodmorning", "good morning", text)
    return [w for w in re.findall(r"[a-z']+", text.lower()) if w not in ("um", "uh", "hmm")]


def _find(words: list[str], keyword: str) -> int | None:
    """Index of the keyword's first word as spoken (KEYWORDS' first spelling), or None."""
    target = KEYWORDS[keyword][0].split()
    return next((i for i in range(len(words)) if words[i:i + len(target)] == target), None)


def split_at_second_keyword(audio_path: Path, r: dict, out_dir: Path, split: str
                            ) -> list[dict] | None:
    """Two keyword clips from one sentence that says its labelled keyword and "computer", or
    None when the alignment cannot be trusted (it must put the labelled keyword within
    MAX_LABEL_DRIFT_S of the hand label)."""
    samples = read_audio_16k(audio_path)
    words = _spoken_words(r["transcription"])
    spans = align.word_spans(samples, words)
    if spans is None:
        return None
    kw = r["keyword"].strip()
    i_kw, i_second = _find(words, kw), _find(words, SECOND_KEYWORD)
    if i_kw is None or i_second is None:  # said in another form ("computers")
        return None
    label = (float(r["kw_start_s"]), float(r["kw_end_s"]))
    if abs(spans[i_kw][0] - label[0]) > MAX_LABEL_DRIFT_S:
        return None
    second = spans[i_second]
    second_said_first = second[1] <= label[0]
    if not second_said_first and second[0] < label[1]:
        return None  # overlapping: no clean cut
    cut = (second[1] + label[0]) / 2 if second_said_first else (label[1] + second[0]) / 2
    cut_at = int(round(cut * SAMPLE_RATE))
    stem = Path(r["file"]).with_suffix("")
    rows = []
    for part, (a, b) in enumerate(((0, cut_at), (cut_at, len(samples)))):
        offset = a / SAMPLE_RATE
        has_second = (part == 0) == second_said_first
        name, (start, end) = (SECOND_KEYWORD, second) if has_second else (kw, label)
        idx = [j for j, (ws, _) in enumerate(spans) if (ws >= cut) == (part == 1)]
        path = out_dir / "segments" / f"{stem}-{part}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_wav_16k(path, samples[a:b])
        rows.append(_row(os.path.relpath(path, out_dir), name, f"{start - offset:.3f}",
                         f"{end - offset:.3f}", r["speaker"], " ".join(words[j] for j in idx),
                         "keyword_sentence", f"{(b - a) / SAMPLE_RATE:.3f}", split))
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


def build(data: Path, out_dir: Path, split_second_keyword: bool = False) -> RealCorpus:
    skipped: Counter = Counter()
    rows = []
    wuw, speech = data / "wuw-train.csv", data / "speech.csv"
    if not wuw.is_file() and not speech.is_file():
        raise SystemExit(f"{data}: neither wuw-train.csv nor speech.csv (is it real-train?)")
    if "real-dev" in data.resolve().parts:
        raise SystemExit(f"{data}: real-dev is for evaluation only; never train on it")
    if wuw.is_file():
        rows += wuw_rows(wuw, out_dir, skipped, split_second_keyword)
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
    p.add_argument("--split-second-keyword", action="store_true",
                   help=f'cut the WUW sentences that also say "{SECOND_KEYWORD}" into two '
                        "keyword clips where forced alignment agrees with the hand label")
    args = p.parse_args(argv)
    corpus = build(args.data, args.out, args.split_second_keyword)
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
