"""One client's Detect stream: validates its config, turns its bytes into 16 kHz chunks and
runs them through a pipeline of its own (sharing the daemon's model).

Bytes become samples only through kwsd.audio.convert (pcm16_to_int16, to_mono, Resampler),
the same path every other source uses, so a file sent through Detect gives the detections
that `kwsd eval` gives on it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from kwsd.api.v1 import kwsd_pb2 as pb
from kwsd.audio.chunk import AudioChunk
from kwsd.audio.convert import Resampler, float_to_int16, pcm16_to_int16, to_mono
from kwsd.events import Event, EventKind
from kwsd.server.messages import event_to_pb, samples_to_duration

MIN_RATE_HZ = 8_000
MAX_RATE_HZ = 48_000
MAX_CHANNELS = 2
_LABEL = re.compile(r"^[A-Za-z0-9._-]{0,64}$")


class BadRequest(ValueError):
    """A request the client must fix (INVALID_ARGUMENT); the message names the field."""


@dataclass(frozen=True, slots=True)
class StreamFormat:
    sample_rate_hz: int
    channels: int
    keywords: frozenset[str]
    min_confidence: float
    label: str


def check_audio_format(cfg: pb.DetectConfig | pb.EnrollConfig) -> None:
    """The audio format fields a client declares (Detect, EnrollKeyword); BadRequest names the
    field that is wrong and what is allowed."""
    if cfg.encoding == pb.ENCODING_UNSPECIFIED:
        raise BadRequest("config.encoding is not set: use LINEAR16 (signed 16-bit little-endian)")
    if cfg.encoding != pb.LINEAR16:
        raise BadRequest(f"config.encoding {cfg.encoding} is not supported: use LINEAR16")
    if cfg.sample_rate_hz == 0:
        raise BadRequest("config.sample_rate_hz is not set (8000..48000 Hz)")
    if not MIN_RATE_HZ <= cfg.sample_rate_hz <= MAX_RATE_HZ:
        raise BadRequest(f"config.sample_rate_hz {cfg.sample_rate_hz} is not supported: "
                         f"use {MIN_RATE_HZ}..{MAX_RATE_HZ} Hz")
    if cfg.channels == 0:
        raise BadRequest("config.channels is not set (1 or 2)")
    if not 1 <= cfg.channels <= MAX_CHANNELS:
        raise BadRequest(f"config.channels {cfg.channels} is not supported: use 1..{MAX_CHANNELS}")


def validate_config(cfg: pb.DetectConfig, known_keywords: Iterable[str]) -> StreamFormat:
    """Check a DetectConfig; raise BadRequest saying which field is wrong and what is allowed."""
    check_audio_format(cfg)
    known = set(known_keywords)
    unknown = sorted(set(cfg.keywords) - known)
    if unknown:
        raise BadRequest(f"config.keywords: unknown keyword(s) {unknown}; the model knows "
                         f"{sorted(known)}")
    if not 0.0 <= cfg.min_confidence <= 1.0:
        raise BadRequest(f"config.min_confidence {cfg.min_confidence} is outside [0, 1]")
    if not _LABEL.match(cfg.label):
        raise BadRequest("config.label must be at most 64 characters of A-Z a-z 0-9 . _ -")
    return StreamFormat(cfg.sample_rate_hz, cfg.channels, frozenset(cfg.keywords),
                        float(cfg.min_confidence), cfg.label)


def run_pipeline(pipeline, chunk: AudioChunk) -> list[Event]:
    """The engine's Pipeline: one chunk in, the events it completes out."""
    return list(pipeline.process(chunk) or [])


def flush_pipeline(pipeline) -> list[Event]:
    """Events still pending at the end of the stream (a keyword that ends with the audio)."""
    flush = getattr(pipeline, "flush", None)
    return list(flush() or []) if flush is not None else []


class DetectSession:
    """State of one Detect call. Not thread-safe: one handler thread drives it."""

    def __init__(self, pipeline, fmt: StreamFormat, stream_id: str) -> None:
        self.pipeline = pipeline
        self.fmt = fmt
        self.stream_id = stream_id
        self._resampler = Resampler(fmt.sample_rate_hz)
        self.input_frames = 0
        self.position = 0  # samples at 16 kHz handed to the pipeline so far
        self.detections = 0
        self.compute_s = 0.0

    def feed(self, data: bytes) -> list[pb.Event]:
        """Raises AudioFormatError for bytes that are not whole frames."""
        frames = pcm16_to_int16(data, self.fmt.channels)
        self.input_frames += len(frames)
        mono = to_mono(frames)
        if mono.dtype != np.int16:  # averaged channels come back as float in int16 scale
            mono = float_to_int16(mono / 32768.0)
        return self._process(self._resampler.process(mono))

    def finish(self) -> list[pb.Event]:
        tail = self._resampler.process(np.zeros(0, dtype=np.int16), last=True)
        out = self._process(tail)
        t0 = time.perf_counter()
        pending = flush_pipeline(self.pipeline)
        self.compute_s += time.perf_counter() - t0
        return out + self._keep(pending)

    def summary(self) -> pb.DetectSummary:
        audio_s = self.position / 16_000
        return pb.DetectSummary(
            stream_id=self.stream_id,
            input_frames=self.input_frames,
            samples_processed=self.position,
            audio_duration=samples_to_duration(self.position),
            detections=self.detections,
            real_time_factor=self.compute_s / audio_s if audio_s else 0.0,
        )

    def _process(self, samples: np.ndarray) -> list[pb.Event]:
        if not len(samples):
            return []
        chunk = AudioChunk(samples=samples, start_sample=self.position, capture_time=time.time())
        self.position += len(samples)
        t0 = time.perf_counter()
        events = run_pipeline(self.pipeline, chunk)
        self.compute_s += time.perf_counter() - t0
        return self._keep(events)

    def _keep(self, events: list[Event]) -> list[pb.Event]:
        out = []
        for ev in events:
            if ev.kind != EventKind.DETECTION:
                continue
            if self.fmt.keywords and ev.keyword not in self.fmt.keywords:
                continue
            if ev.confidence < self.fmt.min_confidence:
                continue
            self.detections += 1
            out.append(event_to_pb(ev, sequence=self.detections))
        return out
