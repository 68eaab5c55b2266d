"""Synthetic speech for tests: espeak-ng renders text; energy finds where the words are."""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from kwsd.audio.audiofile import read_audio_16k
from kwsd.audio.chunk import SAMPLE_RATE


def require_espeak() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.fail("espeak-ng is not installed (scripts/install.sh installs it)")
    return exe


@functools.lru_cache(maxsize=64)
def _render(text: str, voice: str, speed: int) -> bytes:
    exe = require_espeak()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "s.wav"
        subprocess.run([exe, "-v", voice, "-s", str(speed), "-w", str(out), text], check=True,
                       capture_output=True, timeout=60)
        return read_audio_16k(out).tobytes()


def espeak(text: str, voice: str = "en-us", speed: int = 150) -> np.ndarray:
    """16 kHz int16 speech for `text`, trimmed of espeak-ng's own leading/trailing silence."""
    samples = np.frombuffer(_render(text, voice, speed), dtype=np.int16).copy()
    lo, hi = speech_span(samples)
    return samples[lo:hi]


def speech_span(samples: np.ndarray, frame: int = 160, rel_db: float = -35.0) -> tuple[int, int]:
    """First and last sample of frames within `rel_db` of the loudest frame."""
    n = len(samples) // frame
    frames = samples[: n * frame].astype(np.float64).reshape(n, frame)
    energy = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-9)
    loud = np.flatnonzero(energy > energy.max() + rel_db)
    return int(loud[0] * frame), int((loud[-1] + 1) * frame)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), dtype=np.int16)


def noise(seconds: float, dbfs: float, seed: int = 0) -> np.ndarray:
    """White noise at a given RMS level."""
    rms = 32768.0 * 10 ** (dbfs / 20)
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, rms, int(seconds * SAMPLE_RATE))
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)
