"""Turning a WAV file or a numpy array into the DetectRequest messages of one Detect call.

The audio is sent at its own rate when the daemon accepts it (8-48 kHz), so the daemon's one
resampler does the work; only other rates are resampled here, with the same project resampler.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kwsd.api.v1 import kwsd_pb2 as pb
from kwsd.audio.audiofile import read_audio
from kwsd.audio.chunk import SAMPLE_RATE
from kwsd.audio.convert import float_to_int16, resample
from kwsd.server.detect import MAX_CHANNELS, MAX_RATE_HZ, MIN_RATE_HZ


@dataclass(frozen=True)
class ClientAudio:
    """int16 frames (frames, channels) at `sample_rate`, ready to be sent."""

    frames: np.ndarray
    sample_rate: int

    @property
    def channels(self) -> int:
        return int(self.frames.shape[1])


def client_audio(samples: np.ndarray, sample_rate: int) -> ClientAudio:
    """Accept int16 or float ([-1, 1]) audio, 1-D (mono) or (frames, channels)."""
    samples = np.asarray(samples)
    if samples.ndim == 1:
        samples = samples[:, None]
    if samples.ndim != 2 or not 1 <= samples.shape[1] <= MAX_CHANNELS:
        raise ValueError(f"audio must be 1-D or (frames, 1..{MAX_CHANNELS}), "
                         f"got shape {samples.shape}")
    if samples.dtype != np.int16:
        if not np.issubdtype(samples.dtype, np.floating):
            raise ValueError(f"audio must be int16 or float, got {samples.dtype}")
        samples = float_to_int16(samples)
    rate = int(sample_rate)
    if not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
        mono = samples.mean(axis=1) / 32768.0 if samples.shape[1] > 1 else samples[:, 0]
        samples, rate = resample(mono, rate, SAMPLE_RATE)[:, None], SAMPLE_RATE
    return ClientAudio(np.ascontiguousarray(samples), rate)


def wav_audio(path: str | Path) -> ClientAudio:
    samples, rate = read_audio(path)
    return client_audio(samples, rate)


def detect_requests(audio: ClientAudio, *, keywords: Iterable[str] = (),
                    min_confidence: float = 0.0, label: str = "", chunk_ms: int = 100,
                    realtime: bool = False) -> Iterator[pb.DetectRequest]:
    """Config, then audio chunks of `chunk_ms`; with `realtime`, paced like a live source."""
    yield pb.DetectRequest(config=pb.DetectConfig(
        sample_rate_hz=audio.sample_rate, encoding=pb.LINEAR16, channels=audio.channels,
        keywords=list(keywords), min_confidence=min_confidence, label=label))
    step = max(1, audio.sample_rate * chunk_ms // 1000)
    start = time.monotonic()
    for i in range(0, len(audio.frames), step):
        if realtime:
            delay = start + i / audio.sample_rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        yield pb.DetectRequest(audio=audio.frames[i:i + step].astype("<i2").tobytes())


@dataclass
class DetectResult:
    """What one Detect call returned: detections in stream order, then the summary."""

    detections: list[pb.Event]
    summary: pb.DetectSummary | None

    def add(self, response: pb.DetectResponse) -> None:
        """One streamed response: a detection, or the closing summary."""
        if response.HasField("detection"):
            self.detections.append(response.detection)
        elif response.HasField("summary"):
            self.summary = response.summary
