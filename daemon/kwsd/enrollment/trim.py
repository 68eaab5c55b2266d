"""Find the spoken phrase in an example recording (leading and trailing silence, clicks).

Energy in 10 ms frames against a level derived from the loudest part: the phrase is the loudest
run of frames (short pauses inside it bridged), so a click or a breath apart from the phrase is
left out. No VAD model: enrollment examples are short and mostly speech.
"""

from __future__ import annotations

import numpy as np

from kwsd.audio.chunk import SAMPLE_RATE

FRAME = SAMPLE_RATE // 100          # 10 ms
BRIDGE_FRAMES = 25                  # pauses up to 250 ms stay inside the phrase ("think engine")
MARGIN = SAMPLE_RATE * 40 // 1000   # kept either side of the detected speech


def frame_db(samples: np.ndarray) -> np.ndarray:
    """Level of each 10 ms frame in dBFS."""
    n = len(samples) // FRAME
    if n == 0:
        return np.zeros(0, dtype=np.float64)
    x = samples[: n * FRAME].astype(np.float64).reshape(n, FRAME) / 32768.0
    return 10 * np.log10(np.mean(x * x, axis=1) + 1e-12)


TIGHTEN_DB = (0.0, 3.0, 6.0, 9.0, 12.0)  # level raises tried when the phrase is too long


def speech_span(samples: np.ndarray, max_samples: int | None = None) -> tuple[int, int]:
    """[start, end) of the phrase in samples; (0, 0) when there is no speech-like energy.

    With `max_samples`, a phrase found longer than that is looked for again with a higher
    level (up to +12 dB): on a noisy line, static or a click next to the word otherwise joins
    it and the example is refused as too long although the word itself fits."""
    db = frame_db(samples)
    if len(db) == 0:
        return 0, 0
    peak = float(np.percentile(db, 99))
    floor = float(np.percentile(db, 10))
    level = max(peak - 30.0, floor + 0.4 * (peak - floor), -55.0)
    span = (0, 0)
    for extra in TIGHTEN_DB:
        span = _loudest_run(samples, db, level + extra)
        if max_samples is None or span[1] - span[0] <= max_samples:
            break
    return span


def _loudest_run(samples: np.ndarray, db: np.ndarray, level: float) -> tuple[int, int]:
    active = db > level
    if not active.any():
        return 0, 0
    # runs of active frames, bridging short pauses
    idx = np.flatnonzero(active)
    runs: list[list[int]] = [[int(idx[0]), int(idx[0]) + 1]]
    for i in idx[1:]:
        if i - runs[-1][1] <= BRIDGE_FRAMES:
            runs[-1][1] = int(i) + 1
        else:
            runs.append([int(i), int(i) + 1])
    energy = [float(np.sum(10 ** (db[a:b] / 10))) for a, b in runs]
    a, b = runs[int(np.argmax(energy))]
    return max(0, a * FRAME - MARGIN), min(len(samples), b * FRAME + MARGIN)


def trim(samples: np.ndarray, max_samples: int | None = None) -> np.ndarray:
    """The phrase alone (int16), an empty array when nothing was said."""
    a, b = speech_span(samples, max_samples)
    return np.ascontiguousarray(samples[a:b], dtype=np.int16)
