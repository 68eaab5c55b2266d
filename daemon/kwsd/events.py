"""The one event type: what the pipeline reports and what the bus and the API carry."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

from kwsd.audio.chunk import SAMPLE_RATE


def round_score(p: float) -> float:
    """A score or threshold rounded for people and JSON: at least four decimals, and three
    significant digits of 1 - p, so that 0.99995 and 0.99999 stay apart (a head trained on
    real speech puts keywords and some negatives that close to 1)."""
    p = float(p)
    gap = 1.0 - p
    decimals = 4 if gap <= 0 else max(4, math.floor(-math.log10(gap)) + 3)
    return round(p, decimals)


class EventKind(StrEnum):
    DETECTION = "detection"
    SPEECH_BEGIN = "speech_begin"
    SPEECH_END = "speech_end"


@dataclass(slots=True)
class Event:
    """A detection or a speech-activity boundary in one stream.

    Offsets are in samples of that stream at 16 kHz, counted from the stream's first sample.
    `sequence` is assigned by the bus (monotonic per daemon); 0 before publication.
    """

    kind: EventKind
    source_id: str
    start_sample: int
    end_sample: int
    wall_time: float
    model_id: str = ""
    keyword: str = ""
    confidence: float = 0.0
    threshold: float = 0.0
    sequence: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def start_s(self) -> float:
        return self.start_sample / SAMPLE_RATE

    @property
    def end_s(self) -> float:
        return self.end_sample / SAMPLE_RATE

    def to_dict(self) -> dict:
        return {
            "kind": self.kind.value, "source_id": self.source_id, "keyword": self.keyword,
            "confidence": round_score(self.confidence), "threshold": float(self.threshold),
            "start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3),
            "start_sample": self.start_sample, "end_sample": self.end_sample,
            "wall_time": self.wall_time, "sequence": self.sequence, "model_id": self.model_id,
            "enrolled": bool(self.extra.get("enrolled", False)),
        }
