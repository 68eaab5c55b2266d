"""The one chunk type every audio source yields."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16_000
"""Everything after the source runs at 16 kHz mono int16."""


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """A run of 16 kHz mono int16 samples.

    `start_sample` counts samples since the stream began, so offsets of detections are exact
    even when chunks are dropped or the gate skips audio; `capture_time` is the wall-clock time
    (time.time()) at which the first sample was captured, for latency measurement.
    """

    samples: np.ndarray
    start_sample: int
    capture_time: float

    @property
    def end_sample(self) -> int:
        return self.start_sample + len(self.samples)
