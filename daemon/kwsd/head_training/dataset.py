"""Training clips and the 1 s windows the streaming classifier would see around them.

Two sources: the synthetic corpus manifest (`file,label,kw_start_s,kw_end_s,engine,voice,text,
split`) and a folder in Google Speech Commands layout (one folder per label, `_background_noise_`
with long noise files, optional `validation_list.txt`/`testing_list.txt`).

Windows are placed the way streaming places them: every `hop` samples from an arbitrary phase,
over the clip padded with quiet noise on both sides, so the model sees the keyword at every
offset a live stream can produce. A window is labelled with the keyword only when it covers the
keyword (almost) fully; windows holding a part of it are `_unknown_` (hard negatives: "voya",
"wild..."), those between the two are left out as ambiguous.
"""

from __future__ import annotations

import csv
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kwsd.audio.audiofile import AUDIO_SUFFIXES

UNKNOWN = "_unknown_"
SILENCE = "_silence_"
SILENCE_ALIASES = {"_silence_", "silence", "_noise_", "noise", "_background_noise_"}
UNKNOWN_ALIASES = {"", "_unknown_", "unknown", "negative", "_negative_"}

FULL_COVERAGE = 0.9  # window holds >= 90 % of the keyword -> keyword label
PARTIAL_COVERAGE = 0.55  # window holds <= 55 % of it -> _unknown_ (a fragment is not the keyword)
MIN_SPEECH_S = 0.12  # less active speech than this in a window -> _silence_


class DatasetError(ValueError):
    """Training data that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Clip:
    path: Path
    label: str  # a keyword, UNKNOWN or SILENCE
    kw_start_s: float | None = None
    kw_end_s: float | None = None
    split: str = "train"  # "train" or "heldout"
    voice: str = ""
    engine: str = ""
    text: str = ""
    kind: str = ""  # corpus kind: keyword, keyword_sentence, partial, sentence, noise, ...

    @property
    def in_sentence(self) -> bool:
        if self.kind:
            return self.kind == "keyword_sentence"
        return len(self.text.split()) > len(self.label.split()) + 1


def labels_for(keywords: list[str]) -> list[str]:
    """The bundle's label order: keywords, then `_unknown_`, then `_silence_`."""
    return list(keywords) + [UNKNOWN, SILENCE]


def _norm_split(value: str) -> str:
    value = (value or "train").strip().lower()
    return "train" if value in ("train", "training", "") else "heldout"


def _opt_float(text: str | None) -> float | None:
    text = (text or "").strip()
    return float(text) if text else None


def read_corpus_manifest(path: str | Path, keywords: list[str] | None = None
                         ) -> tuple[list[Clip], list[str]]:
    """Clips of the synthetic corpus; keywords default to every label that is not a negative."""
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot open corpus manifest ({exc.strerror or exc})") from None
    with handle:
        reader = csv.DictReader(handle)
        need = {"file", "label"}
        if not need <= set(reader.fieldnames or []):
            raise DatasetError(f"{path}: corpus manifest needs columns file,label "
                               f"(has {reader.fieldnames})")
        rows = list(reader)
    if keywords is None:
        found = {(r.get("label") or "").strip() for r in rows}
        keywords = sorted(k for k in found if k.lower() not in SILENCE_ALIASES | UNKNOWN_ALIASES)
    kwset = set(keywords)
    clips = []
    for line, row in enumerate(rows, start=2):
        raw = (row.get("label") or "").strip()
        label = raw if raw in kwset else SILENCE if raw.lower() in SILENCE_ALIASES else UNKNOWN
        try:
            start, end = _opt_float(row.get("kw_start_s")), _opt_float(row.get("kw_end_s"))
        except ValueError:
            raise DatasetError(f"{path}:{line}: kw_start_s/kw_end_s must be numbers") from None
        clips.append(Clip(path=path.parent / row["file"], label=label, kw_start_s=start,
                          kw_end_s=end, split=_norm_split(row.get("split", "")),
                          voice=row.get("voice", ""), engine=row.get("engine", ""),
                          text=row.get("text", ""), kind=row.get("kind", "")))
    if not clips:
        raise DatasetError(f"{path}: no clips")
    return clips, list(keywords)


_NOHASH = re.compile(r"_nohash_.*$")


def speaker_percentile(speaker: str) -> float:
    """Where a hash of the speaker id puts them in [0, 100): stable forever."""
    h = int(hashlib.sha1(speaker.encode()).hexdigest(), 16)
    return (h % 100_000) / 1000.0


def speaker_held_out(speaker: str, percent: float) -> bool:
    """Speech Commands' own rule: a hash of the speaker id decides the split, stable forever,
    so one speaker is always on the same side."""
    return speaker_percentile(speaker) < percent


def _speaker_heldout(name: str, percent: float = 10.0) -> bool:
    return speaker_held_out(_NOHASH.sub("", name), percent)


def read_speech_commands(root: str | Path, keywords: list[str] | None = None
                         ) -> tuple[list[Clip], list[str]]:
    """Clips of a folder in Google Speech Commands layout. Folders not in `keywords` are
    `_unknown_`; `_background_noise_` files are `_silence_`. Held-out: the dataset's
    validation/testing lists if present, else a hash of the speaker id."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if keywords is None:
        keywords = [p.name for p in folders if not p.name.startswith("_")]
    listed: set[str] = set()
    for name in ("validation_list.txt", "testing_list.txt"):
        if (root / name).is_file():
            listed |= {line.strip() for line in (root / name).read_text().splitlines()
                       if line.strip()}
    clips = []
    for folder in folders:
        for wav in sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES):
            rel = f"{folder.name}/{wav.name}"
            if folder.name == "_background_noise_":
                clips.append(Clip(path=wav, label=SILENCE, split="train", text=folder.name))
                continue
            label = folder.name if folder.name in keywords else UNKNOWN
            held = rel in listed if listed else _speaker_heldout(wav.name)
            clips.append(Clip(path=wav, label=label, split="heldout" if held else "train",
                              voice=_NOHASH.sub("", wav.name), text=folder.name))
    missing = [k for k in keywords if not any(c.label == k for c in clips)]
    if missing:
        raise DatasetError(f"{root}: no clips for keyword(s) {', '.join(missing)}")
    return clips, list(keywords)


# ----------------------------------------------------------------------------------------------
# Windows


def active_span(samples: np.ndarray, rate: int = 16_000, rel: float = 0.1,
                frame: int = 320) -> tuple[int, int] | None:
    """First and last sample of frames whose RMS exceeds `rel` x the loudest frame's."""
    x = samples.astype(np.float32)
    n = len(x) // frame
    if n == 0:
        return None
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1))
    if rms.max() <= 1e-4 * (32768 if samples.dtype == np.int16 else 1):
        return None
    on = np.flatnonzero(rms > rel * rms.max())
    return int(on[0] * frame), int((on[-1] + 1) * frame)


def speech_mask(samples: np.ndarray, rel: float = 0.05, frame: int = 320) -> np.ndarray:
    """Per-sample bool: inside a frame louder than `rel` x the loudest frame."""
    x = samples.astype(np.float32)
    n = -(-len(x) // frame)
    padded = np.zeros(n * frame, np.float32)
    padded[: len(x)] = x
    rms = np.sqrt(np.mean(padded.reshape(n, frame) ** 2, axis=1))
    if rms.max() <= 0:
        return np.zeros(len(x), dtype=bool)
    return np.repeat(rms > rel * rms.max(), frame)[: len(x)]


@dataclass(frozen=True)
class Window:
    start: int  # first sample within the padded clip
    label: str
    coverage: float  # fraction of the keyword inside the window (0 for negatives)


def place_windows(n_samples: int, window: int, hop: int, phase: int) -> list[int]:
    """Window starts of a stream over `n_samples` samples whose hop grid starts at `phase`."""
    first = phase % hop
    return list(range(first, n_samples - window + 1, hop))


def label_windows(starts: list[int], window: int, label: str, kw_span: tuple[int, int] | None,
                  speech: np.ndarray, rate: int = 16_000) -> list[Window]:
    """Label each window of a (padded) clip; ambiguous ones are dropped."""
    min_speech = int(MIN_SPEECH_S * rate)
    cum = np.concatenate([[0], np.cumsum(speech, dtype=np.int64)])
    out = []
    for s in starts:
        e = s + window
        active = int(cum[min(e, len(speech))] - cum[min(s, len(speech))])
        if label == SILENCE:
            out.append(Window(s, SILENCE, 0.0))
            continue
        if kw_span is not None and label not in (UNKNOWN, SILENCE):
            a, b = kw_span
            overlap = max(0, min(e, b) - max(s, a))
            cov = overlap / max(1, min(b - a, window))
            if cov >= FULL_COVERAGE:
                out.append(Window(s, label, cov))
                continue
            if cov > PARTIAL_COVERAGE:
                continue  # ambiguous: neither clearly the keyword nor clearly not
            if active >= min_speech:
                out.append(Window(s, UNKNOWN, cov))
            else:
                out.append(Window(s, SILENCE, cov))
            continue
        out.append(Window(s, UNKNOWN if active >= min_speech else SILENCE, 0.0))
    return out
