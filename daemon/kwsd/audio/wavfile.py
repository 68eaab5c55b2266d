"""Reading WAV files of any common rate and width into 16 kHz mono int16, with clear errors."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np

from kwsd.audio.chunk import SAMPLE_RATE
from kwsd.audio.convert import check_rate, resample, to_mono


class WavError(ValueError):
    """A WAV file that cannot be read; the message names the file and the problem."""


_WIDTH_DTYPES = {1: np.uint8, 2: "<i2", 4: "<i4"}


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """Return (mono samples as float32 in [-1, 1), native sample rate)."""
    path = Path(path)
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            n_frames = wav.getnframes()
            data = wav.readframes(n_frames)
    except FileNotFoundError:
        raise WavError(f"{path}: no such file") from None
    except (wave.Error, EOFError, OSError, ValueError, RuntimeError, struct.error) as exc:
        reason = str(exc) or type(exc).__name__
        raise WavError(f"{path}: not a readable PCM WAV file ({reason})") from None
    if channels < 1:
        raise WavError(f"{path}: header says {channels} channels")
    try:
        check_rate(rate)
    except ValueError as exc:
        raise WavError(f"{path}: {exc}") from None
    if width == 3:
        raw = np.frombuffer(data[: len(data) - len(data) % 3], dtype=np.uint8).reshape(-1, 3)
        ints = (raw[:, 0].astype(np.int32) | (raw[:, 1].astype(np.int32) << 8)
                | (raw[:, 2].astype(np.int8).astype(np.int32) << 16))
        samples = ints.astype(np.float32) / 8_388_608.0
    elif width in _WIDTH_DTYPES:
        usable = len(data) - len(data) % width
        ints = np.frombuffer(data[:usable], dtype=_WIDTH_DTYPES[width])
        if width == 1:
            samples = (ints.astype(np.float32) - 128.0) / 128.0
        else:
            samples = ints.astype(np.float32) / float(2 ** (8 * width - 1))
    else:
        raise WavError(f"{path}: unsupported sample width of {width} bytes")
    usable = len(samples) - len(samples) % channels
    if usable == 0:
        raise WavError(f"{path}: contains no audio frames")
    mono = to_mono(samples[:usable].reshape(-1, channels)).astype(np.float32)
    return mono, rate


def read_wav_16k(path: str | Path) -> np.ndarray:
    """Read a WAV file and return 16 kHz mono int16 samples (the pipeline's format)."""
    samples, rate = read_wav(path)
    return resample(samples, rate, SAMPLE_RATE)


def write_wav_16k(path: str | Path, samples: np.ndarray) -> None:
    """Write 16 kHz mono int16 samples."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(np.asarray(samples, dtype="<i2").tobytes())
