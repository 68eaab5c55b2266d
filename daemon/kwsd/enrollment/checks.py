"""Is an example usable? Each problem is named with the measurement that shows it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kwsd.audio.chunk import SAMPLE_RATE
from kwsd.enrollment.dtw import subsequence_dtw
from kwsd.enrollment.trim import frame_db

MIN_S = 0.25
CLIP_LEVEL = 32000
CLIP_FRACTION = 0.002
QUIET_DBFS = -40.0
UNLIKE_MARGIN = 0.12          # distance above the others' median that makes an outlier


@dataclass
class ExampleCheck:
    index: int                  # 0-based position of the example
    duration_s: float           # of the trimmed phrase
    level_dbfs: float           # loudest 10 ms frame
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def describe(self) -> str:
        what = "; ".join(self.problems) if self.problems else "ok"
        return f"example {self.index + 1}: {what} ({self.duration_s:.2f} s, " \
               f"peak {self.level_dbfs:.0f} dBFS)"


def check_audio(index: int, raw: np.ndarray, phrase: np.ndarray, max_s: float) -> ExampleCheck:
    """Length, clipping and level of one example (raw recording and its trimmed phrase)."""
    dur = len(phrase) / SAMPLE_RATE
    db = frame_db(phrase)
    level = float(db.max()) if len(db) else -120.0
    problems = []
    if len(phrase) == 0:
        problems.append("no speech found")
    elif dur < MIN_S:
        problems.append(f"too short: {dur:.2f} s of speech, at least {MIN_S:.2f} s needed")
    elif dur > max_s:
        problems.append(f"too long: {dur:.2f} s of speech, at most {max_s:.2f} s "
                        "(one analysis window): say only the phrase")
    raw = np.asarray(raw, dtype=np.int16)
    clipped = float(np.mean(np.abs(raw.astype(np.int32)) >= CLIP_LEVEL)) if len(raw) else 0.0
    if clipped > CLIP_FRACTION:
        problems.append(f"clipped: {100 * clipped:.1f} % of samples at full scale "
                        "(move away from the microphone or lower its gain)")
    if len(phrase) and level < QUIET_DBFS:
        problems.append(f"too quiet: loudest part {level:.0f} dBFS, at least "
                        f"{QUIET_DBFS:.0f} dBFS needed (speak up or raise the gain)")
    return ExampleCheck(index, dur, level, problems)


def unlike_others(templates: list[np.ndarray], windows: list[np.ndarray]) -> dict[int, str]:
    """Examples that match the others much worse than the others match each other.

    templates[i] [n, H] and windows[i] [m, H] are example i's phrase frames and its whole
    window; the distance between two examples is their DTW distance (both directions averaged).
    """
    k = len(templates)
    if k < 3:
        return {}
    d = np.zeros((k, k))
    for i in range(k):
        for j in range(k):
            if i != j:
                d[i, j] = float(subsequence_dtw(templates[i], windows[j][None])[0])
    d = (d + d.T) / 2
    mean = d.sum(axis=1) / (k - 1)
    out = {}
    for i in range(k):
        rest = [j for j in range(k) if j != i]
        ref = float(np.mean([d[a, b] for a in rest for b in rest if a < b]))
        if mean[i] > ref + UNLIKE_MARGIN:
            out[i] = (f"unlike the others: distance {mean[i]:.2f} to them, {ref:.2f} among the "
                      "rest (a different phrase, or noise?)")
    return out
