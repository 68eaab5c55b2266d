"""The kwsd.v1.Kwsd service: maps RPCs onto the daemon (its bus, its model, its pipelines).

Runs on the synchronous gRPC server: every streaming call holds one worker thread, and a Detect
call processes each message before it reads the next, so HTTP/2 flow control holds back a
client that sends faster than the model runs; nothing queues without bound.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterator

import grpc

from kwsd.api.v1 import kwsd_pb2 as pb
from kwsd.api.v1 import kwsd_pb2_grpc as pb_grpc
from kwsd.audio.convert import AudioFormatError
from kwsd.engine.pipeline import PipelineSettings
from kwsd.events import Event, EventKind
from kwsd.server.decoding import Undecodable
from kwsd.server.detect import (
    MAX_CHANNELS,
    MAX_RATE_HZ,
    MIN_RATE_HZ,
    BadRequest,
    DetectSession,
    validate_config,
)
from kwsd.server.messages import event_to_pb, model_info, status_to_pb

log = logging.getLogger(__name__)

STREAM_ID_HEADER = "kwsd-stream-id"
"""Initial-metadata key of a Detect call: the id its detections carry as source_id."""

SUBSCRIBE_POLL_S = 0.5
"""How often a waiting Subscribe call checks that its client is still there."""


class StreamSlots:
    """Counts open Detect streams against the limit (RESOURCE_EXHAUSTED beyond it)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self._lock = threading.Lock()

    def acquire(self) -> bool:
        with self._lock:
            if self.open >= self.limit:
                return False
            self.open += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.open -= 1


class KwsdServicer(pb_grpc.KwsdServicer):
    def __init__(self, daemon, *, max_streams: int, max_chunk_bytes: int,
                 max_message_bytes: int, max_subscribers: int = 64, metrics=None) -> None:
        self.daemon = daemon
        self.max_subscribers = max_subscribers
        self.max_chunk_bytes = max_chunk_bytes
        self.limits = pb.Limits(max_streams=max_streams, max_chunk_bytes=max_chunk_bytes,
                                max_message_bytes=max_message_bytes,
                                min_sample_rate_hz=MIN_RATE_HZ, max_sample_rate_hz=MAX_RATE_HZ,
                                max_channels=MAX_CHANNELS)
        self.streams = StreamSlots(max_streams)
        self.metrics = metrics
        self.stopping = threading.Event()
        self._stream_ids = itertools.count(1)
        self._subs_lock = threading.Lock()
        self._subs: set = set()

    # -- lifecycle -------------------------------------------------------------------------

    def begin_stop(self) -> None:
        """Refuse new calls with UNAVAILABLE and end every open subscription cleanly (OK)."""
        self.stopping.set()
        with self._subs_lock:
            subs = list(self._subs)
        for sub in subs:
            sub.close()

    def _check_available(self, context: grpc.ServicerContext) -> None:
        if self.stopping.is_set() or getattr(self.daemon, "stopping", False):
            context.abort(grpc.StatusCode.UNAVAILABLE, "kwsd is shutting down")

    @staticmethod
    def _check_decoded(request, context: grpc.ServicerContext, what: str = "request") -> None:
        if isinstance(request, Undecodable):
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{what}: {request.describe()}")

    def _keywords(self) -> list[str]:
        enrolled = getattr(self.daemon, "enrolled", None)
        return list(self.daemon.bundle.keywords) + (list(enrolled.names) if enrolled else [])

    def _precision(self) -> str:
        """The encoder precision the daemon's streams run (the same resolution as Pipeline)."""
        settings = getattr(self.daemon, "settings", None) or PipelineSettings()
        return settings.precision_for(self.daemon.bundle)

    # -- unary -----------------------------------------------------------------------------

    def GetModel(self, request: pb.GetModelRequest, context) -> pb.ModelInfo:
        self._check_available(context)
        self._check_decoded(request, context)
        info = model_info(self.daemon.bundle, getattr(self.daemon, "thresholds", None),
                          self.limits, self._precision())
        enrolled = getattr(self.daemon, "enrolled", None)
        if enrolled:
            info.keywords.extend(enrolled.names)
            info.enrolled_keywords.extend(enrolled.names)
            for name, thr in enrolled.thresholds.items():
                info.thresholds[name] = float(thr)
        return info

    def GetStatus(self, request: pb.GetStatusRequest, context) -> pb.Status:
        self._check_available(context)
        self._check_decoded(request, context)
        return status_to_pb(self.daemon.status(), streams_open=self.streams.open,
                            serving=bool(self.daemon.serving),
                            stopping=bool(self.daemon.stopping) or self.stopping.is_set(),
                            model_id=str(self.daemon.bundle.model_id),
                            precision=self._precision())

    # -- Subscribe -------------------------------------------------------------------------

    def Subscribe(self, request: pb.SubscribeRequest, context) -> Iterator[pb.Event]:
        self._check_available(context)
        self._check_decoded(request, context)
        keywords = set(request.keywords)
        unknown = sorted(keywords - set(self._keywords()))
        if unknown:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"keywords: unknown keyword(s) {unknown}; the model knows "
                          f"{sorted(self._keywords())}")
        if not 0.0 <= request.min_confidence <= 1.0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"min_confidence {request.min_confidence} is outside [0, 1]")
        predicate = _event_filter(keywords, request.min_confidence, set(request.sources),
                                  request.include_speech_activity)
        name = f"grpc:{request.client_name or context.peer()}"
        with self._subs_lock:
            if len(self._subs) >= self.max_subscribers:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"too many subscribers (limit {self.max_subscribers})")
            sub = self.daemon.bus.subscribe(name, predicate)
            self._subs.add(sub)
        context.add_callback(sub.close)  # client gone: wake the waiting get() at once
        context.send_initial_metadata(())  # tells the client the subscription exists
        try:
            while context.is_active():
                event = sub.get(timeout=SUBSCRIBE_POLL_S)
                if event is None:
                    if sub.closed:
                        return  # daemon stopping: end the stream with OK
                    continue
                yield event_to_pb(event, events_lost=sub.dropped)
        finally:
            sub.close()
            with self._subs_lock:
                self._subs.discard(sub)

    # -- enrolled keywords -----------------------------------------------------------------

    def _check_may_change(self, context) -> None:
        """Enrolling changes the daemon: Unix-socket callers only, unless configured."""
        from kwsd.server.auth import _peer_is_local_socket

        api = getattr(getattr(self.daemon, "config", None), "api", None)
        if not _peer_is_local_socket(context) and not getattr(api, "enroll_over_tcp", False):
            context.abort(grpc.StatusCode.PERMISSION_DENIED,
                          "enrolling and deleting keywords is allowed on the Unix socket only "
                          "(set api.enroll_over_tcp to allow TCP callers)")

    def EnrollKeyword(self, request_iterator, context) -> pb.EnrollResponse:
        from kwsd.enrollment import store
        from kwsd.enrollment.enroll import EnrollmentError, enroll
        from kwsd.server.enroll import (
            MAX_EXAMPLES,
            check_config,
            check_pb,
            decode_example,
            keyword_pb,
        )

        self._check_available(context)
        self._check_may_change(context)
        first = next(request_iterator, None)
        self._check_decoded(first, context, "message 1")
        if first is None or first.WhichOneof("request") != "config":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "message 1 must carry an EnrollConfig (name and audio format)")
        cfg = first.config
        examples = []
        try:
            check_config(cfg)
            name = store.check_name(cfg.name, self.daemon.bundle.keywords)
            for i, req in enumerate(request_iterator, start=2):
                self._check_decoded(req, context, f"message {i}")
                if req.WhichOneof("request") != "example":
                    raise BadRequest(f"message {i}: after the config only examples may follow")
                if len(examples) >= MAX_EXAMPLES:
                    raise BadRequest(f"at most {MAX_EXAMPLES} examples")
                examples.append(decode_example(cfg, req.example, len(examples)))
            if not examples:
                raise BadRequest("no examples: send at least one utterance of the phrase")
            result = enroll(self.daemon.bundle, name, examples,
                            fa_target_per_h=cfg.fa_target_per_hour or None,  # 0: the model's
                            settings=getattr(self.daemon, "settings", None))
        except (BadRequest, store.StoreError, EnrollmentError, AudioFormatError) as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        out = pb.EnrollResponse(enrolled=result.ok, seconds=float(result.seconds),
                                checks=[check_pb(c) for c in result.checks])
        if result.ok:
            store.save(result.keyword, examples if cfg.keep_audio else None)
            refresh = getattr(self.daemon, "refresh_enrolled", None)
            if refresh is not None:
                refresh()
            out.keyword.CopyFrom(keyword_pb(result.keyword, True))
        return out

    def ListKeywords(self, request: pb.ListKeywordsRequest, context) -> pb.ListKeywordsResponse:
        from kwsd.enrollment import store
        from kwsd.enrollment.features import encoder_id
        from kwsd.server.enroll import keyword_pb

        self._check_available(context)
        self._check_decoded(request, context)
        current = encoder_id(self.daemon.bundle)
        try:
            kws = store.list_keywords()
        except store.StoreError as exc:
            context.abort(grpc.StatusCode.INTERNAL, str(exc))
        return pb.ListKeywordsResponse(
            keywords=[keyword_pb(k, k.encoder_id == current) for k in kws])

    def DeleteKeyword(self, request: pb.DeleteKeywordRequest, context
                      ) -> pb.DeleteKeywordResponse:
        from kwsd.enrollment import store

        self._check_available(context)
        self._check_may_change(context)
        self._check_decoded(request, context)
        try:
            store.remove(request.name)
        except store.StoreError as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        refresh = getattr(self.daemon, "refresh_enrolled", None)
        if refresh is not None:
            refresh()
        return pb.DeleteKeywordResponse()

    # -- Detect ----------------------------------------------------------------------------

    def Detect(self, request_iterator, context) -> Iterator[pb.DetectResponse]:
        self._check_available(context)
        if not self.streams.acquire():
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"too many Detect streams open (limit {self.streams.limit})")
        try:
            if self.metrics is not None:
                self.metrics.streams_changed(self.streams.open)
            yield from self._detect(request_iterator, context)
        finally:
            self.streams.release()
            if self.metrics is not None:
                self.metrics.streams_changed(self.streams.open)

    def _detect(self, request_iterator, context) -> Iterator[pb.DetectResponse]:
        first = next(request_iterator, None)
        self._check_decoded(first, context, "message 1")
        if first is None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "stream ended before its config: the first DetectRequest must carry "
                          "config")
        if first.WhichOneof("request") != "config":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "audio before config: the first DetectRequest must carry config")
        try:
            fmt = validate_config(first.config, self._keywords())
        except BadRequest as exc:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        n = next(self._stream_ids)
        stream_id = f"detect:{fmt.label}:{n}" if fmt.label else f"detect:{n}"
        try:
            pipeline = self.daemon.open_stream(stream_id)
        except Exception as exc:  # the daemon is not serving (stopping, no model)
            log.warning("Detect %s refused: %s", stream_id, exc)
            context.abort(grpc.StatusCode.UNAVAILABLE, f"kwsd cannot open a stream now: {exc}")
        session = DetectSession(pipeline, fmt, stream_id)
        # Headers now, not with the first detection: the client learns that its config was
        # accepted and the stream's id before it sends audio.
        context.send_initial_metadata(((STREAM_ID_HEADER, stream_id),))
        try:
            for index, request in enumerate(request_iterator, start=2):
                self._check_available(context)
                self._check_decoded(request, context, f"message {index}")
                kind = request.WhichOneof("request")
                if kind == "config":
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                  f"message {index}: config sent twice; only the first "
                                  "DetectRequest may carry config")
                if kind is None:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                  f"message {index}: empty DetectRequest (neither config nor "
                                  "audio)")
                if len(request.audio) > self.max_chunk_bytes:
                    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                  f"message {index}: audio chunk of {len(request.audio)} bytes "
                                  f"is longer than the limit of {self.max_chunk_bytes} bytes")
                try:
                    events = session.feed(request.audio)
                except AudioFormatError as exc:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"message {index}: {exc}")
                for msg in events:
                    yield pb.DetectResponse(detection=msg)
            for msg in session.finish():
                yield pb.DetectResponse(detection=msg)
            yield pb.DetectResponse(summary=session.summary())
        finally:
            close = getattr(session.pipeline, "close", None)
            if close is not None:
                close()


def _event_filter(keywords: set[str], min_confidence: float, sources: set[str],
                  speech: bool):
    """The bus predicate of one subscriber (runs on the publishing thread: keep it cheap)."""

    def accept(event: Event) -> bool:
        if sources and event.source_id not in sources:
            return False
        if event.kind == EventKind.DETECTION:
            if keywords and event.keyword not in keywords:
                return False
            return event.confidence >= min_confidence
        return speech

    return accept
