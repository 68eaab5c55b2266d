"""asyncio Python client of kwsd.v1, the same API as KwsdClient with `async`.

    async with AsyncKwsdClient() as client:
        async for event in client.subscribe(keywords=["computer"]):
            ...
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable
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


class AsyncKwsdClient:
    def __init__(self, address: str = "", *, token: str = "", tls: bool = False,
                 tls_ca: str = "", tls_cert: str = "", tls_key: str = "",
                 server_name: str = "", insecure_loopback: bool = False,
                 timeout_s: float = 10.0) -> None:
        self.connection = Connection(address, token, tls, tls_ca, tls_cert, tls_key,
                                     server_name, insecure_loopback)
        self.timeout_s = timeout_s
        self._channel = self.connection.open_aio()
        self._stub = pb_grpc.KwsdStub(self._channel)
        self._closed = asyncio.Event()

    async def __aenter__(self) -> AsyncKwsdClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed.set()
        await self._channel.close()

    async def get_model(self) -> pb.ModelInfo:
        return await self._stub.GetModel(pb.GetModelRequest(), timeout=self.timeout_s,
                                         metadata=self.connection.metadata)

    async def get_status(self) -> pb.Status:
        return await self._stub.GetStatus(pb.GetStatusRequest(), timeout=self.timeout_s,
                                          metadata=self.connection.metadata)

    async def subscribe(self, keywords: Iterable[str] = (), min_confidence: float = 0.0,
                        sources: Iterable[str] = (), include_speech_activity: bool = False,
                        client_name: str = "", reconnect: bool = True,
                        backoff: Backoff | None = None,
                        on_state: Callable[[str, str], None] | None = None,
                        ) -> AsyncIterator[pb.Event]:
        """Events until `close()`; reconnects with backoff like KwsdClient.subscribe."""
        request = pb.SubscribeRequest(keywords=list(keywords), min_confidence=min_confidence,
                                      sources=list(sources),
                                      include_speech_activity=include_speech_activity,
                                      client_name=client_name)
        backoff = backoff or Backoff()
        notify = on_state or (lambda state, detail: log.info("subscription %s %s", state, detail))
        while not self._closed.is_set():
            call = self._stub.Subscribe(request, metadata=self.connection.metadata)
            try:
                await call.initial_metadata()
                backoff.reset()
                notify("connected", self.connection.target.grpc_target)
                async for event in call:
                    yield event
                detail = "the daemon ended the stream"
            except grpc.RpcError as exc:
                if self._closed.is_set():
                    return
                if not reconnect or exc.code() not in RETRYABLE:
                    raise
                detail = f"{exc.code().name}: {exc.details()}"
            finally:
                call.cancel()
            if not reconnect or self._closed.is_set():
                return
            delay = backoff.next_delay()
            notify("disconnected", detail)
            notify("retrying", f"in {delay:.1f} s")
            try:
                await asyncio.wait_for(self._closed.wait(), delay)
                return
            except TimeoutError:
                pass

    async def detect(self, samples: np.ndarray | ClientAudio, sample_rate: int = 16_000, *,
                     keywords: Iterable[str] = (), min_confidence: float = 0.0,
                     label: str = "", chunk_ms: int = 100, realtime: bool = False,
                     reconnect: bool = False, backoff: Backoff | None = None,
                     on_state: Callable[[str, str], None] | None = None) -> DetectResult:
        """As KwsdClient.detect (with `reconnect`, a lost stream is sent again from its start)."""
        audio = samples if isinstance(samples, ClientAudio) else client_audio(samples,
                                                                              sample_rate)

        async def requests():
            # The blocking generator's pacing sleeps are replaced by asyncio ones.
            start = asyncio.get_running_loop().time()
            step_s = chunk_ms / 1000
            for i, request in enumerate(detect_requests(audio, keywords=keywords,
                                                        min_confidence=min_confidence,
                                                        label=label, chunk_ms=chunk_ms)):
                if realtime and i > 1:
                    delay = start + (i - 1) * step_s - asyncio.get_running_loop().time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                yield request

        backoff = backoff or Backoff()
        notify = on_state or (lambda state, detail: log.info("detect %s %s", state, detail))
        while True:
            call = self._stub.Detect(requests(), metadata=self.connection.metadata)
            result = DetectResult([], None)
            try:
                await call.initial_metadata()
                if not call.done():
                    backoff.reset()
                    notify("connected", self.connection.target.grpc_target)
                async for response in call:
                    result.add(response)
                return result
            except grpc.RpcError as exc:
                if not reconnect or self._closed.is_set() or exc.code() not in RETRYABLE:
                    raise
                lost = exc
            delay = backoff.next_delay()
            notify("disconnected", f"{lost.code().name}: {lost.details()}")
            notify("retrying", f"in {delay:.1f} s")
            try:
                await asyncio.wait_for(self._closed.wait(), delay)
                raise lost
            except TimeoutError:
                pass

    async def detect_wav(self, path: str | Path, **kwargs) -> DetectResult:
        return await self.detect(wav_audio(path), **kwargs)
