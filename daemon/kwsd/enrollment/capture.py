"""One utterance from the microphone, cut by the daemon's VAD gate (for `kwsd enroll --record`).

The gate's pre-roll keeps the first syllable; its hang-over ends the utterance after a pause;
the trimmer then cuts the phrase out of it, as for a file.
"""

from __future__ import annotations

import time

import numpy as np

from kwsd.config import VadConfig
from kwsd.engine.vad import GatedAudio, SpeechBegin, SpeechEnd, VadGate


class CaptureTimeout(TimeoutError):
    """Nobody spoke within the time allowed."""


def capture_utterance(source, timeout_s: float = 15.0, vad: VadConfig | None = None,
                      max_s: float = 5.0) -> np.ndarray:
    """Read a started AudioSource until one utterance has begun and ended; its int16 samples."""
    gate = VadGate(vad or VadConfig(), 16000 * 300 // 1000)
    parts: list[np.ndarray] = []
    speaking = False
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        chunk = source.read(0.2)
        if chunk is None:
            continue
        for item in gate.push(chunk.samples, chunk.start_sample):
            if isinstance(item, SpeechBegin):
                speaking = True
            elif isinstance(item, GatedAudio) and speaking:
                parts.append(item.samples)
            elif isinstance(item, SpeechEnd) and speaking and parts:
                return np.concatenate(parts)[: int(max_s * 16000)]
    raise CaptureTimeout(f"nothing said within {timeout_s:.0f} s")
