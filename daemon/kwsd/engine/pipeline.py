"""One audio stream's detection path: VAD gate -> StreamingClassifier -> decision -> Events.

The daemon's microphone, a file in `kwsd eval`, and a client's `Detect` stream all run through
this class, so a figure measured offline holds live. `process` takes chunks of any size and
returns the events they complete; `flush` ends the stream the way silence would (the hang-over
still runs), so a file's last keyword is decided exactly as it would be live.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from kwsd.audio.chunk import SAMPLE_RATE, AudioChunk
from kwsd.config import Config, ConfigError, DecisionConfig, VadConfig
from kwsd.engine.decision import (
    Decision,
    Detection,
    model_decision,
    resolve_thresholds,
    sensitivity_thresholds,
)
from kwsd.engine.vad import GatedAudio, SpeechBegin, SpeechEnd, VadGate
from kwsd.events import Event, EventKind

if TYPE_CHECKING:  # kwsd.model imports torch; the engine loads it only when a Pipeline is made
    from kwsd.enrollment.detector import EnrolledSet
    from kwsd.model.bundle import ModelBundle
    from kwsd.model.scheduler import InferenceScheduler
    from kwsd.model.streaming import StreamingClassifier


@dataclass(frozen=True)
class PipelineSettings:
    """The per-stream part of the config (what SIGHUP may change for new pipelines)."""

    vad: VadConfig = field(default_factory=VadConfig)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    hop_ms: int = 0                 # 0 = the model's hop
    precision: str = ""             # "" = the model's (kws.json streaming.precision, else fp32)
    cascade: str = ""               # "on" / "off"; "" = the model's (kws.json streaming.cascade)

    @classmethod
    def from_config(cls, config: Config) -> PipelineSettings:
        return cls(vad=config.vad, decision=config.decision, hop_ms=config.engine.hop_ms,
                   precision=config.engine.precision, cascade=config.engine.cascade)

    def precision_for(self, bundle: ModelBundle) -> str:
        """The encoder precision this stream runs on `bundle` (engine.precision, else the
        bundle's). GetModel and GetStatus report it."""
        from kwsd.model.precision import resolve_precision

        try:
            return resolve_precision(getattr(bundle, "meta", None), self.precision)
        except ValueError as exc:
            raise ConfigError("engine.precision", str(exc)) from None


def _keyword_samples(bundle: ModelBundle) -> dict[str, int]:
    """Typical keyword lengths from kws.json when the trainer recorded them (optional)."""
    meta = getattr(bundle, "meta", None) or {}
    durations = meta.get("keyword_duration_s") or meta.get("keyword_durations_s") or {}
    out = {}
    if isinstance(durations, dict):
        for kw, seconds in durations.items():
            if isinstance(seconds, int | float) and 0 < seconds < 5:
                out[str(kw)] = int(seconds * SAMPLE_RATE)
    return out


class Pipeline:
    """Per-stream state; shares the (read-only) model in `bundle` with every other stream."""

    def __init__(self, bundle: ModelBundle, source_id: str,
                 settings: PipelineSettings | None = None,
                 classifier: StreamingClassifier | None = None,
                 enrolled: EnrolledSet | None = None,
                 scheduler: InferenceScheduler | None = None) -> None:
        """`scheduler`: the daemon's shared inference scheduler (windows of all its streams
        run batched); None runs each window alone, as `kwsd eval` and training do."""
        from kwsd.model.cascade import CascadeError
        from kwsd.model.streaming import StreamingClassifier

        self.bundle = bundle
        # Keywords a user enrolled (kwsd.enrollment): scored next to the bundle's, decided by
        # the same Decision; their events say `enrolled`.
        self.enrolled = enrolled if enrolled else None
        self.source_id = source_id
        self.settings = settings or PipelineSettings()
        self.model_id = str(getattr(bundle, "model_id", ""))
        self.thresholds = resolve_thresholds(
            bundle.keywords,
            sensitivity_thresholds(bundle, self.settings.decision.sensitivity),
            self.settings.decision)
        pre_roll = (SAMPLE_RATE * self.settings.vad.pre_roll_ms // 1000
                    or int(bundle.window_samples))
        self.gate = VadGate(self.settings.vad, pre_roll)
        hop = SAMPLE_RATE * self.settings.hop_ms // 1000 or int(bundle.hop_samples)
        if classifier is None:
            precision = self.settings.precision_for(bundle)
            try:
                if self.enrolled is not None:
                    from kwsd.enrollment.streaming import EnrolledClassifier

                    classifier = EnrolledClassifier(bundle, self.enrolled, hop_samples=hop,
                                                    precision=precision, scheduler=scheduler)
                else:
                    classifier = StreamingClassifier(bundle, hop_samples=hop,
                                                     precision=precision,
                                                     cascade=self.settings.cascade,
                                                     scheduler=scheduler)
            except CascadeError as exc:
                raise ConfigError("engine.cascade", str(exc)) from None
            except ValueError as exc:
                raise ConfigError("engine.hop_ms", str(exc)) from None
        self.classifier = classifier
        self.hop = int(getattr(classifier, "hop", hop))
        self.precision = str(getattr(classifier, "precision", ""))
        labels, keywords = list(bundle.labels), list(bundle.keywords)
        keyword_samples = _keyword_samples(bundle)
        if self.enrolled is not None:
            labels += self.enrolled.names
            keywords += self.enrolled.names
            self.thresholds.update(self.enrolled.thresholds)
            for kw in self.enrolled.keywords:
                keyword_samples[kw.name] = int(kw.duration_s * SAMPLE_RATE)
        self.decision = Decision(labels, keywords, self.thresholds,
                                 model_decision(bundle, self.settings.decision),
                                 int(bundle.window_samples),
                                 self.hop, speech_runs=self.gate.speech_runs,
                                 keyword_samples=keyword_samples)
        self.next_sample = 0            # one past the last sample received
        self.audio_s = 0.0              # audio received
        self.busy_s = 0.0               # compute spent on it
        self.windows = 0                # posteriors computed
        self.detections = 0
        self.last_progress = time.monotonic()
        self.closed = False
        self._time_ref: tuple[int, float] | None = None   # (sample, wall time of that sample)

    # --- the stream --------------------------------------------------------------------------
    def process(self, chunk: AudioChunk) -> list[Event]:
        t0 = time.perf_counter()
        self._time_ref = (chunk.start_sample, chunk.capture_time)
        events: list[Event] = []
        for item in self.gate.push(chunk.samples, chunk.start_sample):
            self._handle(item, events)
        self.next_sample = chunk.end_sample
        self.audio_s += len(chunk.samples) / SAMPLE_RATE
        self.busy_s += time.perf_counter() - t0
        self.last_progress = time.monotonic()
        return events

    def process_samples(self, samples: np.ndarray, start_sample: int | None = None,
                        capture_time: float | None = None) -> list[Event]:
        """Convenience for callers that hold plain int16 arrays (Detect, eval)."""
        start = self.next_sample if start_sample is None else start_sample
        return self.process(AudioChunk(np.asarray(samples, dtype=np.int16), start,
                                       time.time() if capture_time is None else capture_time))

    def flush(self) -> list[Event]:
        """End of stream: run the hang-over on silence, then close the gate."""
        events: list[Event] = []
        vad = self.settings.vad
        if self.gate.is_open:
            pad = self.hop + self.gate.frame
            if vad.enabled:
                pad += SAMPLE_RATE * vad.hangover_ms // 1000
            t = self._wall_time(self.next_sample)
            events += self.process(AudioChunk(np.zeros(pad, dtype=np.int16),
                                              self.next_sample, t))
        for item in self.gate.close():
            self._handle(item, events)
        return events

    def run(self, samples: np.ndarray, chunk_samples: int = 1600,
            start_time: float | None = None) -> list[Event]:
        """A whole recording through the live path, as fast as possible (eval, tests)."""
        t0 = time.time() if start_time is None else start_time
        events: list[Event] = []
        samples = np.asarray(samples, dtype=np.int16)
        for i in range(0, len(samples), chunk_samples):
            start = self.next_sample
            events += self.process(AudioChunk(samples[i:i + chunk_samples], start,
                                              t0 + start / SAMPLE_RATE))
        events += self.flush()
        return events

    def close(self) -> None:
        self.closed = True

    # --- figures -------------------------------------------------------------------------------
    @property
    def rtf(self) -> float:
        return self.busy_s / self.audio_s if self.audio_s else 0.0

    @property
    def vad_duty_cycle(self) -> float:
        return self.gate.duty_cycle

    # --- internals ----------------------------------------------------------------------------
    def _handle(self, item: object, events: list[Event]) -> None:
        if isinstance(item, GatedAudio):
            for post in self.classifier.accept(item.samples, item.start_sample):
                self.windows += 1
                det = self.decision.update(int(post.start_sample), int(post.end_sample),
                                           post.probs)
                if det is not None:
                    self.detections += 1
                    events.append(self._detection_event(det))
        elif isinstance(item, SpeechBegin):
            events.append(self._speech_event(EventKind.SPEECH_BEGIN, item.sample))
        elif isinstance(item, SpeechEnd):
            self.decision.reset()
            events.append(self._speech_event(EventKind.SPEECH_END, item.sample))

    def _wall_time(self, sample: int) -> float:
        if self._time_ref is None:
            return time.time()
        ref_sample, ref_time = self._time_ref
        return ref_time + (sample - ref_sample) / SAMPLE_RATE

    def _detection_event(self, det: Detection) -> Event:
        return Event(kind=EventKind.DETECTION, source_id=self.source_id,
                     start_sample=det.start_sample, end_sample=det.end_sample,
                     wall_time=time.time(), model_id=self.model_id, keyword=det.keyword,
                     confidence=det.confidence, threshold=det.threshold,
                     extra={"window_start": det.window_start, "window_end": det.window_end,
                            "audio_end_time": self._wall_time(det.end_sample),
                            "enrolled": (self.enrolled is not None
                                         and det.keyword in self.enrolled.thresholds)})

    def _speech_event(self, kind: EventKind, sample: int) -> Event:
        return Event(kind=kind, source_id=self.source_id, start_sample=sample,
                     end_sample=sample, wall_time=time.time(), model_id=self.model_id,
                     extra={"audio_time": self._wall_time(sample)})


def run_file_samples(bundle: ModelBundle, samples: np.ndarray, source_id: str = "file",
                     settings: PipelineSettings | None = None,
                     chunk_samples: int = 1600) -> list[Event]:
    """Detect keywords in a whole 16 kHz int16 recording exactly as the daemon would live."""
    return Pipeline(bundle, source_id, settings).run(samples, chunk_samples)
