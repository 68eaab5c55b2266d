"""Long test audio built here, from espeak-ng: keywords at known times inside long non-keyword
speech, noise and silence.

Rendering hours of speech would take hours, so a small pool of clips (each keyword and a few
dozen carrier sentences in several voices) is rendered once and a seeded program strings them
together with random gains, gaps and noise. The program is generated segment by segment, so any
length costs no memory and two runs with different chunk sizes see exactly the same samples.
No pytest here: scripts/soak-test.py and the load test use it too.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

RATE = 16_000
VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-029", "en-us+f3", "en-gb-x-rp+m4")
SENTENCES = (
    "The weather today is grey with a light wind from the west.",
    "Please put the red book back on the second shelf.",
    "We should leave early if we want to catch the train.",
    "She painted the fence green and then the gate as well.",
    "Turn left at the bakery and walk past the old church.",
    "Coffee tastes better when the beans are freshly ground.",
    "The meeting moved to Thursday afternoon at three.",
    "He kept a small notebook for every idea he had.",
    "Most birds in the garden arrive just after sunrise.",
    "Remember to water the plants on the balcony.",
    "The library closes at eight on weekdays.",
    "Our neighbours adopted a very loud little dog.",
    "A good soup needs time, salt and patience.",
    "The bridge was painted orange a hundred years ago.",
    "Nobody could find the keys to the basement.",
    "The children built a castle out of cardboard boxes.",
    "I would like a window seat near the front, please.",
    "The river rose two metres after the heavy rain.",
    "Mathematics is the language of patterns and shapes.",
    "Let us meet by the fountain in the main square.",
    "The printer on the third floor is out of paper again.",
    "Tomorrow the market opens an hour later than usual.",
    "They sailed along the coast for nearly a week.",
    "Every evening the lighthouse sweeps the dark water.",
)


class SynthError(RuntimeError):
    pass


def render(text: str, voice: str = "en-us", speed: int = 160) -> np.ndarray:
    """espeak-ng speech for `text` as 16 kHz int16, its own leading/trailing silence trimmed."""
    from kwsd.audio.audiofile import read_audio_16k

    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SynthError("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "s.wav"
        subprocess.run([exe, "-v", voice, "-s", str(speed), "-w", str(out), text], check=True,
                       capture_output=True, timeout=60)
        samples = read_audio_16k(out)
    frame = 160
    n = len(samples) // frame
    energy = np.mean(samples[: n * frame].astype(np.float64).reshape(n, frame) ** 2, axis=1)
    loud = np.flatnonzero(10 * np.log10(energy + 1e-9) > 10 * np.log10(energy.max()) - 35)
    return samples[loud[0] * frame: (loud[-1] + 1) * frame].copy()


@dataclass
class ClipPool:
    """Rendered keyword clips (per keyword) and non-keyword sentences."""

    keywords: dict[str, list[np.ndarray]]
    sentences: list[np.ndarray]

    @classmethod
    def build(cls, keywords: list[str] | tuple[str, ...], cache: Path | None = None,
              voices: tuple[str, ...] = VOICES, n_sentences: int = len(SENTENCES)) -> ClipPool:
        """Render (or read from `cache`, an .npz file) the clips."""
        if cache is not None and cache.is_file():
            data = np.load(cache)
            kws = {k: [data[n] for n in sorted(data.files) if n.startswith(f"kw|{k}|")]
                   for k in keywords}
            if all(kws.values()):
                sent = [data[n] for n in sorted(data.files) if n.startswith("s|")]
                return cls(kws, sent)
        kws = {k: [render(k, v, s) for v in voices for s in (140, 185)] for k in keywords}
        sent = [render(t, voices[i % len(voices)])
                for i, t in enumerate(SENTENCES[:n_sentences])]
        if cache is not None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            arrays = {f"kw|{k}|{i:03d}": c for k, cs in kws.items() for i, c in enumerate(cs)}
            arrays.update({f"s|{i:03d}": c for i, c in enumerate(sent)})
            np.savez(cache, **arrays)
        return cls(kws, sent)


@dataclass(frozen=True)
class KeywordAt:
    keyword: str
    start_sample: int
    end_sample: int


def _noise(rng: np.random.Generator, n: int, dbfs: float, coloured: bool) -> np.ndarray:
    x = rng.standard_normal(n)
    if coloured:  # brown-ish: rumble, fans, traffic
        x = np.cumsum(x)
        x -= np.convolve(x, np.ones(400) / 400, mode="same")
        x /= max(np.std(x), 1e-9)
    return x * 32768.0 * 10 ** (dbfs / 20)


def _int16(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


class Program:
    """A seeded sequence of segments: long speech, keywords in and out of sentences, noise,
    silence. Iterate `segments()` (arrays of a few seconds) or `chunks(n)`; `schedule` lists
    where the keywords are, filled in as segments are generated."""

    def __init__(self, pool: ClipPool, seconds: float, seed: int = 0,
                 keyword_every_s: float = 30.0) -> None:
        self.pool = pool
        self.total = int(seconds * RATE)
        self.seed = seed
        self.keyword_every_s = keyword_every_s
        self.schedule: list[KeywordAt] = []

    def segments(self) -> Iterator[np.ndarray]:
        rng = np.random.default_rng(self.seed)
        kw_names = sorted(self.pool.keywords)
        pos = 0
        self.schedule = []
        p_kw = min(0.9, 8.0 / self.keyword_every_s)  # segments average ~8 s
        while pos < self.total:
            kind = rng.choice(["speech", "keyword", "noise", "quiet"],
                              p=[0.55 * (1 - p_kw) / 0.8, p_kw, 0.15 * (1 - p_kw) / 0.8,
                                 0.1 * (1 - p_kw) / 0.8])
            parts: list[np.ndarray] = []
            kw_spans: list[tuple[str, int, int]] = []
            if kind in ("speech", "keyword"):
                n_sent = int(rng.integers(1, 4))
                for i in range(n_sent):
                    s = self.pool.sentences[int(rng.integers(len(self.pool.sentences)))]
                    parts.append(s * rng.uniform(0.3, 1.0))
                    if kind == "keyword" and i == n_sent // 2:
                        kw = kw_names[int(rng.integers(len(kw_names)))]
                        clips = self.pool.keywords[kw]
                        clip = clips[int(rng.integers(len(clips)))]
                        gap = np.zeros(int(rng.uniform(0.05, 0.8) * RATE))
                        parts.append(gap)
                        offset = sum(len(p) for p in parts)
                        parts.append(clip * rng.uniform(0.4, 1.0))
                        kw_spans.append((kw, offset, offset + len(clip)))
                        parts.append(np.zeros(int(rng.uniform(0.05, 0.8) * RATE)))
                    parts.append(np.zeros(int(rng.uniform(0.1, 0.6) * RATE)))
                if kind == "keyword" and not kw_spans:  # n_sent == 0 never happens; keep safe
                    continue
            elif kind == "noise":
                n = int(rng.uniform(2, 10) * RATE)
                parts.append(_noise(rng, n, rng.uniform(-40, -22), bool(rng.integers(2))))
            else:
                parts.append(np.zeros(int(rng.uniform(1, 6) * RATE)))
            seg = np.concatenate(parts)
            floor_db = rng.uniform(-75, -50)      # room noise under everything
            seg = seg + _noise(rng, len(seg), floor_db, False)
            for kw, a, b in kw_spans:
                self.schedule.append(KeywordAt(kw, pos + a, pos + b))
            seg = _int16(seg)
            if pos + len(seg) > self.total:
                seg = seg[: self.total - pos]
            pos += len(seg)
            yield seg

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        """The program in chunks of exactly `size` samples (the last one may be shorter)."""
        buf = np.zeros(0, dtype=np.int16)
        for seg in self.segments():
            buf = np.concatenate([buf, seg]) if len(buf) else seg
            while len(buf) >= size:
                yield buf[:size]
                buf = buf[size:]
        if len(buf):
            yield buf

    def samples(self) -> np.ndarray:
        """The whole program at once (short programs only)."""
        return np.concatenate(list(self.segments()))
