"""Blocking Python client of kwsd.v1.

    with KwsdClient() as client:                 # the default Unix socket
        for event in client.subscribe(keywords=["computer"]):
            print(event.keyword, event.confidence)

`subscribe` reconnects by itself (with backoff) when the daemon restarts or the connection
drops, and stops on errors that retrying cannot fix (bad filter, wrong token). `detect` does
the same when asked (`reconnect=True`), sending the audio again from its start: behind a load
balancer the new stream goes to another daemon of the fleet.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import grpc
import numpy as np

from kwsd.api.v1 import kwsd_pb2 as pb
from kwsd.api.v1 import kwsd_pb2_grpc as pb_grpc
from kwsd.client.audio_input import (
    ClientAudio,
    DetectResult,
    client_audio,
    detect_requests,
    wav_audio,
)
from kwsd.client.backoff import RETRYABLE, Backoff
from kwsd.client.channel import Connection

log = logging.getLogger(__name__)


class KwsdClient:
    def __init__(self, address: str = "", *, token: str = "", tls: bool = False,
                 tls_ca: str = "", tls_cert: str = "", tls_key: str = "",
                 server_name: str = "", insecure_loopback: bool = False,
                 timeout_s: float = 10.0) -> None:
        self.connection = Connection(address, token, tls, tls_ca, tls_cert, tls_key,
                                     server_name, insecure_loopback)
        self.timeout_s = timeout_s
        self._channel = self.connection.open()
        self._stub = pb_grpc.KwsdStub(self._channel)
        self._closed = threading.Event()
        self._calls_lock = threading.Lock()
        self._calls: set = set()

    # -- plumbing --------------------------------------------------------------------------

    def __enter__(self) -> KwsdClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Cancel open streams (a waiting subscribe ends) and close the channel."""
        self._closed.set()
        with self._calls_lock:
            calls = list(self._calls)
        for call in calls:
            call.cancel()
        self._channel.close()

    @property
    def channel(self) -> grpc.Channel:
        return self._channel

    def _track(self, call) -> None:
        with self._calls_lock:
            self._calls.add(call)

    def _untrack(self, call) -> None:
        with self._calls_lock:
            self._calls.discard(call)

    # -- unary -----------------------------------------------------------------------------

    def get_model(self) -> pb.ModelInfo:
        return self._stub.GetModel(pb.GetModelRequest(), timeout=self.timeout_s,
                                   metadata=self.connection.metadata)

    def get_status(self) -> pb.Status:
        return self._stub.GetStatus(pb.GetStatusRequest(), timeout=self.timeout_s,
                                    metadata=self.connection.metadata)

    # -- Subscribe -------------------------------------------------------------------------

    def subscribe(self, keywords: Iterable[str] = (), min_confidence: float = 0.0,
                  sources: Iterable[str] = (), include_speech_activity: bool = False,
                  client_name: str = "", reconnect: bool = True,
                  backoff: Backoff | None = None,
                  on_state: Callable[[str, str], None] | None = None) -> Iterator[pb.Event]:
        """Events as they come, until `close()` (or the caller stops iterating).

        `on_state(state, detail)` hears "connected", "disconnected" and "retrying" changes.
        With `reconnect=False` a lost connection raises grpc.RpcError.
        """
        request = pb.SubscribeRequest(keywords=list(keywords), min_confidence=min_confidence,
                                      sources=list(sources),
                                      include_speech_activity=include_speech_activity,
                                      client_name=client_name)
        backoff = backoff or Backoff()
        notify = on_state or (lambda state, detail: log.info("subscription %s %s", state, detail))
        while not self._closed.is_set():
            call = self._stub.Subscribe(request, metadata=self.connection.metadata)
            self._track(call)
            try:
                call.initial_metadata()  # the daemon sends it once the subscription exists
                if not call.done():
                    backoff.reset()
                    notify("connected", self.connection.target.grpc_target)
                yield from call
                detail = "the daemon ended the stream"
            except grpc.RpcError as exc:
                if self._closed.is_set():
                    return
                if not reconnect or exc.code() not in RETRYABLE:
                    raise
                detail = f"{exc.code().name}: {exc.details()}"
            finally:
                self._untrack(call)
                call.cancel()
            if not reconnect or self._closed.is_set():
                return
            delay = backoff.next_delay()
            notify("disconnected", detail)
            notify("retrying", f"in {delay:.1f} s")
            if self._closed.wait(delay):
                return

    # -- Detect ----------------------------------------------------------------------------

    def detect(self, samples: np.ndarray | ClientAudio, sample_rate: int = 16_000, *,
               keywords: Iterable[str] = (), min_confidence: float = 0.0, label: str = "",
               chunk_ms: int = 100, realtime: bool = False, reconnect: bool = False,
               backoff: Backoff | None = None,
               on_state: Callable[[str, str], None] | None = None) -> DetectResult:
        """Run audio through the daemon's model; `realtime` paces it like a live source,
        otherwise it goes as fast as the daemon takes it.

        With `reconnect`, a stream lost to a retryable error (the daemon stopped or died, as
        one of a fleet behind a load balancer does) is sent again from its first sample on a
        new call, after a backoff delay, until it completes: the result is always that of the
        whole audio, never a stream cut short. `on_state(state, detail)` hears "connected"
        (the daemon accepted the config), "disconnected" and "retrying". Without it, a lost
        stream raises grpc.RpcError.
        """
        audio = samples if isinstance(samples, ClientAudio) else client_audio(samples,
                                                                              sample_rate)
        backoff = backoff or Backoff()
        notify = on_state or (lambda state, detail: log.info("detect %s %s", state, detail))
        lost: grpc.RpcError | None = None
        while True:
            call = self._stub.Detect(
                detect_requests(audio, keywords=keywords, min_confidence=min_confidence,
                                label=label, chunk_ms=chunk_ms, realtime=realtime),
                metadata=self.connection.metadata)
            self._track(call)
            result = DetectResult([], None)
            try:
                call.initial_metadata()  # sent once the daemon has accepted the config
                if not call.done():
                    backoff.reset()
                    notify("connected", self.connection.target.grpc_target)
                for response in call:
                    result.add(response)
                return result
            except grpc.RpcError as exc:
                if not reconnect or self._closed.is_set() or exc.code() not in RETRYABLE:
                    raise
                lost = exc
            finally:
                self._untrack(call)
            delay = backoff.next_delay()
            notify("disconnected", f"{lost.code().name}: {lost.details()}")
            notify("retrying", f"in {delay:.1f} s")
            if self._closed.wait(delay):
                raise lost

    def detect_wav(self, path: str | Path, **kwargs) -> DetectResult:
        return self.detect(wav_audio(path), **kwargs)

    # -- enrolled keywords -----------------------------------------------------------------

    def enroll_keyword(self, name: str, examples: Iterable[np.ndarray | ClientAudio | str | Path],
                       sample_rate: int = 16_000, *, fa_target_per_hour: float = 0.0,
                       keep_audio: bool = True) -> pb.EnrollResponse:
        """Enroll `name` from a few recordings (arrays at `sample_rate`, ClientAudio, or audio
        files); the response has each example's checks and, if enrolled, the threshold."""
        audios = [e if isinstance(e, ClientAudio)
                  else wav_audio(e) if isinstance(e, str | Path)
                  else client_audio(e, sample_rate) for e in examples]
        if not audios:
            raise ValueError("no examples")
        rates = {(a.sample_rate, a.channels) for a in audios}
        if len(rates) != 1:
            raise ValueError(f"examples differ in rate/channels {sorted(rates)}: use one format")
        rate, channels = rates.pop()
        requests = [pb.EnrollRequest(config=pb.EnrollConfig(
            name=name, sample_rate_hz=rate, encoding=pb.LINEAR16, channels=channels,
            fa_target_per_hour=fa_target_per_hour, keep_audio=keep_audio))]
        requests += [pb.EnrollRequest(example=np.ascontiguousarray(a.frames, "<i2").tobytes())
                     for a in audios]
        return self._stub.EnrollKeyword(iter(requests), timeout=max(self.timeout_s or 0, 300),
                                        metadata=self.connection.metadata)

    def list_keywords(self) -> list[pb.EnrolledKeyword]:
        return list(self._stub.ListKeywords(pb.ListKeywordsRequest(), timeout=self.timeout_s,
                                            metadata=self.connection.metadata).keywords)

    def delete_keyword(self, name: str) -> None:
        self._stub.DeleteKeyword(pb.DeleteKeywordRequest(name=name), timeout=self.timeout_s,
                                 metadata=self.connection.metadata)

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        """Block until the daemon answers (for scripts that start it just before)."""
        deadline = time.monotonic() + timeout_s
        grpc.channel_ready_future(self._channel).result(timeout=max(0.0, deadline -
                                                                     time.monotonic()))
