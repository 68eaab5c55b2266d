"""Reading audio files (WAV, FLAC, Ogg/Vorbis, any rate and channel count) into the pipeline's
16 kHz mono int16, with errors that name the file and the problem.

One reader for every place kwsd opens a file (`serve --wav`, `eval`, `train`, `distill`, the
client's `detect_wav`): libsndfile through `soundfile` decodes the formats, kwsd checks what it
got (rate, frames) and resamples in its one resampler.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import soundfile

from kwsd.audio.chunk import SAMPLE_RATE
from kwsd.audio.convert import check_rate, resample, to_mono

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga")
"""What `read_audio` is made for (libsndfile reads a few more: AIFF, AU, ...)."""


class AudioFileError(ValueError):
    """An audio file that cannot be read; the message names the file and the problem."""


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Return (mono samples as float32 in [-1, 1], native sample rate)."""
    path = Path(path)
    if not path.exists():
        raise AudioFileError(f"{path}: no such file")
    if path.is_dir():
        raise AudioFileError(f"{path}: is a folder, not an audio file")
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.SoundFileError, RuntimeError, TypeError, ValueError, OSError,
            EOFError) as exc:
        reason = str(exc).replace(f"Error opening {str(path)!r}: ", "") or type(exc).__name__
        raise AudioFileError(f"{path}: not a readable WAV, FLAC or Ogg file ({reason})") from None
    try:
        check_rate(rate)
    except ValueError as exc:
        raise AudioFileError(f"{path}: {exc}") from None
    if samples.shape[0] == 0 or samples.shape[1] == 0:
        raise AudioFileError(f"{path}: contains no audio frames")
    return to_mono(samples).astype(np.float32), int(rate)


def read_audio_16k(path: str | Path) -> np.ndarray:
    """Read an audio file and return 16 kHz mono int16 samples (the pipeline's format)."""
    samples, rate = read_audio(path)
    return resample(samples, rate, SAMPLE_RATE)


def write_wav_16k(path: str | Path, samples: np.ndarray) -> None:
    """Write 16 kHz mono int16 samples."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(np.asarray(samples, dtype="<i2").tobytes())
