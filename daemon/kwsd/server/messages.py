"""Conversions between kwsd's own types (Event, status dicts, the model bundle) and kwsd.v1
messages. Kept apart from the servicer so the wire format is defined in one place."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from kwsd.api.v1 import kwsd_pb2 as pb
from kwsd.audio.chunk import SAMPLE_RATE
from kwsd.events import Event, EventKind

if TYPE_CHECKING:
    from kwsd.model.bundle import ModelBundle

_KIND_TO_PB = {
    EventKind.DETECTION: pb.EVENT_KIND_DETECTION,
    EventKind.SPEECH_BEGIN: pb.EVENT_KIND_SPEECH_BEGIN,
    EventKind.SPEECH_END: pb.EVENT_KIND_SPEECH_END,
}
_PB_TO_KIND = {v: k for k, v in _KIND_TO_PB.items()}

_STATE_TO_PB = {
    "starting": pb.SOURCE_STATE_STARTING,
    "opening": pb.SOURCE_STATE_STARTING,
    "running": pb.SOURCE_STATE_RUNNING,
    "ok": pb.SOURCE_STATE_RUNNING,
    "degraded": pb.SOURCE_STATE_DEGRADED,
    "retrying": pb.SOURCE_STATE_DEGRADED,
    "stopped": pb.SOURCE_STATE_STOPPED,
    "ended": pb.SOURCE_STATE_STOPPED,
    "finished": pb.SOURCE_STATE_STOPPED,
}


def samples_to_duration(samples: int, rate: int = SAMPLE_RATE) -> Duration:
    seconds, rest = divmod(int(samples), rate)
    return Duration(seconds=seconds, nanos=rest * 1_000_000_000 // rate)


def seconds_to_duration(seconds: float) -> Duration:
    d = Duration()
    d.FromNanoseconds(int(round(seconds * 1e9)))
    return d


def wall_to_timestamp(wall_time: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(round(wall_time * 1e9)))
    return ts


def event_to_pb(event: Event, *, sequence: int | None = None, events_lost: int = 0) -> pb.Event:
    return pb.Event(
        kind=_KIND_TO_PB.get(event.kind, pb.EVENT_KIND_UNSPECIFIED),
        keyword=event.keyword,
        confidence=float(event.confidence),
        threshold=float(event.threshold),
        source_id=event.source_id,
        start_sample=int(event.start_sample),
        end_sample=int(event.end_sample),
        start_offset=samples_to_duration(event.start_sample),
        end_offset=samples_to_duration(event.end_sample),
        wall_time=wall_to_timestamp(event.wall_time),
        sequence=int(event.sequence if sequence is None else sequence),
        model_id=event.model_id,
        events_lost=int(events_lost),
        enrolled=bool(event.extra.get("enrolled", False)),
    )


def event_from_pb(msg: pb.Event) -> Event:
    """The client side: a kwsd.v1.Event back into the project's one event type."""
    return Event(
        kind=_PB_TO_KIND.get(msg.kind, EventKind.DETECTION),
        source_id=msg.source_id,
        start_sample=msg.start_sample,
        end_sample=msg.end_sample,
        wall_time=msg.wall_time.ToNanoseconds() / 1e9,
        model_id=msg.model_id,
        keyword=msg.keyword,
        confidence=msg.confidence,
        threshold=msg.threshold,
        sequence=msg.sequence,
        extra={"events_lost": msg.events_lost, "enrolled": msg.enrolled},
    )


def model_info(bundle: ModelBundle, thresholds: Mapping[str, float] | None,
               limits: pb.Limits, precision: str = "") -> pb.ModelInfo:
    meta = getattr(bundle, "meta", {}) or {}
    model = meta.get("model") if isinstance(meta.get("model"), dict) else meta  # kws.json
    thresholds = dict(thresholds if thresholds is not None else bundle.thresholds)
    window, hop, rate = int(bundle.window_samples), int(bundle.hop_samples), int(bundle.sample_rate)
    return pb.ModelInfo(
        model_id=str(bundle.model_id),
        name=str(model.get("name", "")),
        version=str(model.get("version", "")),
        keywords=list(bundle.keywords),
        labels=list(bundle.labels),
        thresholds={k: float(v) for k, v in thresholds.items()},
        sample_rate_hz=rate,
        window_samples=window,
        hop_samples=hop,
        window=samples_to_duration(window, rate),
        hop=samples_to_duration(hop, rate),
        limits=limits,
        precision=precision,
    )


def _source_status(src: Mapping[str, Any]) -> pb.SourceStatus:
    state = str(src.get("state", ""))
    return pb.SourceStatus(
        id=str(src.get("id", "")),
        kind=str(src.get("kind", "")),
        state=_STATE_TO_PB.get(state.lower(), pb.SOURCE_STATE_UNSPECIFIED),
        state_detail=state,
        detail=str(src.get("detail", "") or ""),
        overflows=int(src.get("overflows", 0) or 0),
        real_time_factor=float(src.get("rtf", 0.0) or 0.0),
    )


def status_to_pb(status: Mapping[str, Any], *, streams_open: int, serving: bool,
                 stopping: bool, model_id: str, precision: str = "") -> pb.Status:
    """`Daemon.status()` dict -> Status. `streams_open` comes from the server, which is what
    counts Detect calls; the larger of the two counts is reported."""
    sources = [_source_status(s) for s in status.get("sources", [])]
    subscribers = [
        pb.SubscriberStatus(name=str(s.get("name", "")), queued=int(s.get("queued", 0)),
                            events_lost=int(s.get("dropped", 0)))
        for s in status.get("subscribers", [])
    ]
    return pb.Status(
        uptime=seconds_to_duration(float(status.get("uptime_s", 0.0))),
        sources=sources,
        vad_duty_cycle=float(status.get("vad_duty_cycle", 0.0) or 0.0),
        real_time_factor=float(status.get("rtf", 0.0) or 0.0),
        overflows=sum(s.overflows for s in sources),
        streams_open=max(int(status.get("streams_open", 0) or 0), streams_open),
        subscribers=subscribers,
        serving=serving,
        stopping=stopping,
        model_id=model_id,
        time=wall_to_timestamp(time.time()),
        reloads=int(status.get("reloads", 0) or 0),
        last_reload_error=str(status.get("last_reload_error", "") or ""),
        precision=precision,
        inference=_inference_status(status.get("inference") or {}),
    )


def _inference_status(inf: Mapping[str, Any]) -> pb.InferenceStatus:
    """The scheduler's `stats()` (Daemon.status()["inference"]) -> InferenceStatus."""
    return pb.InferenceStatus(
        batching="batches" in inf, device=str(inf.get("device", "cpu")),
        max_batch=int(inf.get("max_batch", 1)), max_wait_ms=float(inf.get("max_wait_ms", 0.0)),
        batches=int(inf.get("batches", 0)), windows=int(inf.get("windows", 0)),
        mean_batch_size=float(inf.get("mean_batch", 0.0)),
        recent_mean_batch_size=float(inf.get("recent_mean_batch", 0.0)),
        max_batch_seen=int(inf.get("max_batch_seen", 0)),
        queue_wait_p50_ms=1000 * float(inf.get("queue_wait_p50_s", 0.0)),
        queue_wait_p95_ms=1000 * float(inf.get("queue_wait_p95_s", 0.0)),
        late_windows=int(inf.get("late_windows", 0)),
        dropped_windows=int(inf.get("dropped_windows", 0)))
