"""The one place where bytes become samples and where audio is resampled.

Every source (microphone, WAV file, stdin, gRPC client) goes through these functions, so there
is one resampler (soxr) and one definition of the sample format in the whole project.
"""

from __future__ import annotations

import numpy as np
import soxr

from kwsd.audio.chunk import SAMPLE_RATE

_INT16_SCALE = 32768.0


class AudioFormatError(ValueError):
    """Audio that cannot be interpreted as described (odd byte count, bad rate, ...)."""


def pcm16_to_int16(data: bytes, channels: int = 1) -> np.ndarray:
    """Little-endian signed 16-bit PCM bytes -> int16 array of shape (frames, channels)."""
    if channels < 1:
        raise AudioFormatError(f"channels must be >= 1, got {channels}")
    frame_bytes = 2 * channels
    if len(data) % frame_bytes:
        raise AudioFormatError(
            f"{len(data)} bytes is not a whole number of {channels}-channel 16-bit frames "
            f"({frame_bytes} bytes each)")
    return np.frombuffer(data, dtype="<i2").astype(np.int16).reshape(-1, channels)


def to_mono(frames: np.ndarray) -> np.ndarray:
    """(frames, channels) -> (frames,) by averaging channels, keeping the dtype's scale."""
    if frames.ndim == 1:
        return frames
    if frames.shape[1] == 1:
        return frames[:, 0]
    return frames.astype(np.float32).mean(axis=1)


def pcm16_to_mono(data: bytes, channels: int = 1) -> np.ndarray:
    """PCM16 bytes -> mono ready for `Resampler.process`: int16 for one channel, else the
    channels' mean as float32 in [-1, 1) (to_mono alone keeps int16 scale)."""
    frames = pcm16_to_int16(data, channels)
    return frames[:, 0] if channels == 1 else to_mono(int16_to_float(frames))


def int16_to_float(samples: np.ndarray) -> np.ndarray:
    """int16 -> float32 in [-1, 1)."""
    return samples.astype(np.float32) / _INT16_SCALE


def float_to_int16(samples: np.ndarray) -> np.ndarray:
    """float in [-1, 1] -> int16, clipped."""
    return np.clip(np.round(samples * _INT16_SCALE), -32768, 32767).astype(np.int16)


def check_rate(rate: int) -> int:
    if not isinstance(rate, int | np.integer) or not 4000 <= int(rate) <= 384_000:
        raise AudioFormatError(f"sample rate must be an integer in 4000..384000 Hz, got {rate!r}")
    return int(rate)


class Resampler:
    """Streaming resampler to 16 kHz; keeps filter state across chunks (soxr.ResampleStream)."""

    def __init__(self, in_rate: int, out_rate: int = SAMPLE_RATE) -> None:
        self.in_rate = check_rate(in_rate)
        self.out_rate = out_rate
        self._stream = (None if self.in_rate == out_rate
                        else soxr.ResampleStream(self.in_rate, out_rate, 1, dtype="float32"))

    def process(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        """Mono samples (int16 or float) at `in_rate` -> int16 at `out_rate`."""
        if samples.dtype == np.int16:
            samples = int16_to_float(samples)
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        if self._stream is None:
            return float_to_int16(samples)
        return float_to_int16(self._stream.resample_chunk(samples, last=last))


def resample(samples: np.ndarray, in_rate: int, out_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Whole-signal resampling (mono, int16 or float) -> int16 at out_rate."""
    return Resampler(in_rate, out_rate).process(samples, last=True)
