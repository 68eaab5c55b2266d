"""Held-out synthetic voices as an evaluation manifest (the format `kwsd eval` reads).

Calibration and the held-out figures must see what the daemon sees: streams with quiet
stretches between words, through the same channel augmentation as training. Keyword clips
become one file each (padded, augmented, span moved along); negative and noise clips are
strung together into ~30 s streams, so the VAD gate opens and closes as it does live.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from kwsd.audio.audiofile import AudioFileError, read_audio_16k, write_wav_16k
from kwsd.audio.chunk import SAMPLE_RATE
from kwsd.head_training.dataset import SILENCE, UNKNOWN, Clip

FIELDS = ("file", "keyword", "kw_start_s", "kw_end_s", "in_sentence", "transcription",
          "voice", "engine", "augment")


def _quiet(rng: np.random.Generator, n: int) -> np.ndarray:
    level = 10 ** (rng.uniform(-75, -55) / 20) * 32768
    return np.clip(rng.standard_normal(n) * level, -32768, 32767).astype(np.int16)


def _augment(augmenter, audio: np.ndarray, rng: np.random.Generator):
    if augmenter is None:
        return audio, 1.0, 0.0, ""
    res = augmenter.apply(audio, rng)
    return res.samples, res.time_scale, res.offset_s, "+".join(res.steps)


def write_heldout_set(clips: list[Clip], out: Path, augmenter=None, copies: int = 1,
                      seed: int = 0, stream_s: float = 30.0) -> Path:
    """Write WAVs and `manifest.csv` under `out`; returns the manifest path. Idempotent: an
    existing complete manifest is reused."""
    manifest = out / "manifest.csv"
    if manifest.is_file() and (out / "COMPLETE").is_file():
        return manifest
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for c in range(copies):
        rng = np.random.default_rng([seed, 991, c])
        negatives: list[Clip] = []
        for i, clip in enumerate(clips):
            if clip.label in (UNKNOWN, SILENCE) or clip.kw_start_s is None:
                negatives.append(clip)
                continue
            try:
                samples = read_audio_16k(clip.path)
            except (AudioFileError, ValueError):
                continue
            pre = int(rng.uniform(0.5, 1.5) * SAMPLE_RATE)
            post = int(rng.uniform(0.8, 1.5) * SAMPLE_RATE)
            audio = np.concatenate([_quiet(rng, pre), samples, _quiet(rng, post)])
            audio, scale, offset, steps = _augment(augmenter, audio, rng)
            start = (pre / SAMPLE_RATE + clip.kw_start_s) / scale + offset
            end = (pre / SAMPLE_RATE + (clip.kw_end_s or 0.0)) / scale + offset
            name = f"c{c}/kw-{i:05d}.wav"
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            write_wav_16k(out / name, audio)
            rows.append({"file": name, "keyword": clip.label, "kw_start_s": f"{start:.3f}",
                         "kw_end_s": f"{end:.3f}", "in_sentence": str(clip.in_sentence),
                         "transcription": clip.text, "voice": clip.voice,
                         "engine": clip.engine, "augment": steps})
        rows += _negative_streams(negatives, out, augmenter, rng, c, stream_s)
    with manifest.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    (out / "COMPLETE").write_text("ok\n")
    return manifest


def _negative_streams(negatives: list[Clip], out: Path, augmenter, rng: np.random.Generator,
                      c: int, stream_s: float) -> list[dict]:
    """String negative/noise clips into ~stream_s streams with quiet gaps, one WAV each."""
    rows: list[dict] = []
    parts: list[np.ndarray] = []
    texts: list[str] = []
    voices: set[str] = set()
    length = 0
    order = list(rng.permutation(len(negatives)))
    for pos, j in enumerate(order):
        clip = negatives[int(j)]
        try:
            samples = read_audio_16k(clip.path)
        except (AudioFileError, ValueError):
            samples = None
        if samples is not None:
            gap = _quiet(rng, int(rng.uniform(0.3, 1.2) * SAMPLE_RATE))
            parts += [gap, samples]
            # noise clips carry no words; <...> keeps partial keywords ("voya") from counting
            texts.append("" if clip.label == SILENCE else f"<{clip.text}>")
            voices.add(clip.voice)
            length += len(gap) + len(samples)
        if parts and (length >= stream_s * SAMPLE_RATE or pos == len(order) - 1):
            parts.append(_quiet(rng, SAMPLE_RATE // 2))
            audio, _, _, steps = _augment(augmenter, np.concatenate(parts), rng)
            name = f"c{c}/neg-{len(rows):04d}.wav"
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            write_wav_16k(out / name, audio)
            rows.append({"file": name, "keyword": "", "kw_start_s": "", "kw_end_s": "",
                         "in_sentence": "False",
                         "transcription": " | ".join(t for t in texts if t),
                         "voice": " ".join(sorted(voices)), "engine": "", "augment": steps})
            parts, texts, voices, length = [], [], set(), 0
    return rows
