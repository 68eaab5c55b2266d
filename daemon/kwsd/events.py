"""The one event type: what the pipeline reports and what the bus and the API carry."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from kwsd.audio.chunk import SAMPLE_RATE


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
            "confidence": round(float(self.confidence), 4), "threshold": float(self.threshold),
            "start_s": round(self.start_s, 3), "end_s": round(self.end_s, 3),
            "start_sample": self.start_sample, "end_sample": self.end_sample,
            "wall_time": self.wall_time, "sequence": self.sequence, "model_id": self.model_id,
            "enrolled": bool(self.extra.get("enrolled", False)),
        }
