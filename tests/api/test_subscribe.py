"""Subscribers of a real daemon playing a WAV file: the right events for each filter, health
turning NOT_SERVING on stop, UNAVAILABLE while stopping, and clients that reconnect."""

from __future__ import annotations

import asyncio
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kwsd.api.v1 import kwsd_pb2 as pb
from kwsd.api.v1 import kwsd_pb2_grpc as pb_grpc
from kwsd.audio.audiofile import read_audio_16k
from kwsd.client import AsyncKwsdClient, Backoff, KwsdClient
from running_daemon import start

from .conftest import make_config, offline_detections


class Collector(threading.Thread):
    """Reads one Subscribe stream to its end."""

    def __init__(self, stub, request: pb.SubscribeRequest) -> None:
        super().__init__(daemon=True)
        self.call = stub.Subscribe(request, timeout=120)
        self.events: list[pb.Event] = []
        self.error: grpc.RpcError | None = None

    def run(self) -> None:
        try:
            for event in self.call:
                self.events.append(event)
        except grpc.RpcError as exc:
            self.error = exc

    def detections(self) -> list[pb.Event]:
        return [e for e in self.events if e.kind == pb.EVENT_KIND_DETECTION]


def test_subscribers_receive_the_file_events_then_health_goes_down(random_bundle, padded_wav,
                                                                   sock_dir):
    config = make_config(random_bundle, padded_wav, sock_dir / "kwsd.sock", realtime=True)
    offline = offline_detections(random_bundle, padded_wav, config, "file")
    assert offline, "the random bundle at threshold 0.3 should fire on this file"
    running = start(config)
    channel = grpc.insecure_channel(running.address)
    stub = pb_grpc.KwsdStub(channel)
    try:
        collectors = {
            "all": Collector(stub, pb.SubscribeRequest(include_speech_activity=True,
                                                       client_name="all")),
            "no": Collector(stub, pb.SubscribeRequest(keywords=["no"])),
            "yes": Collector(stub, pb.SubscribeRequest(keywords=["yes"])),
            "other source": Collector(stub, pb.SubscribeRequest(sources=["elsewhere"])),
            "confident": Collector(stub, pb.SubscribeRequest(min_confidence=0.999)),
        }
        for c in collectors.values():
            c.call.initial_metadata()  # subscribed (1.5 s of silence before the speech)
            c.start()
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service="kwsd.v1.Kwsd"), timeout=120)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING

        assert running.daemon.wait_sources(60), "the WAV source did not finish"
        deadline = time.monotonic() + 5
        while (len(collectors["all"].detections()) < len(offline)
               and time.monotonic() < deadline):
            time.sleep(0.05)
        status = stub.GetStatus(pb.GetStatusRequest())
        names = {s.name for s in status.subscribers}
        assert "grpc:all" in names
        assert all(s.events_lost == 0 for s in status.subscribers)
    finally:
        running.stop()

    assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
    for c in collectors.values():
        c.join(10)
        assert not c.is_alive()
        assert c.error is None, c.error  # the daemon ended every stream cleanly (OK)

    got = collectors["all"].detections()
    assert [(e.keyword, e.start_sample / 16000, e.end_sample / 16000) for e in got] == \
        [(d.keyword, d.start_s, d.end_s) for d in offline]
    assert all(e.source_id == "file" and e.model_id == running.daemon.bundle.model_id
               and e.events_lost == 0 for e in got)
    seqs = [e.sequence for e in collectors["all"].events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    kinds = {e.kind for e in collectors["all"].events}
    assert {pb.EVENT_KIND_SPEECH_BEGIN, pb.EVENT_KIND_SPEECH_END} <= kinds
    for kw in ("yes", "no"):
        assert [e.sequence for e in collectors[kw].events] == \
            [e.sequence for e in got if e.keyword == kw]
    assert collectors["other source"].events == []
    assert collectors["confident"].events == []
    channel.close()


def test_unavailable_while_stopping(random_bundle, speech_wav, sock_dir):
    running = start(make_config(random_bundle, speech_wav, sock_dir / "kwsd.sock",
                                realtime=False))
    try:
        with grpc.insecure_channel(running.address) as channel:
            stub = pb_grpc.KwsdStub(channel)
            sub = stub.Subscribe(pb.SubscribeRequest(), timeout=30)
            sub.initial_metadata()
            running.handle.servicer.begin_stop()  # what ServerHandle.stop does first
            # An open subscription ends cleanly (events already published may still arrive;
            # a subscription left open would raise DEADLINE_EXCEEDED here instead).
            assert all(isinstance(event, pb.Event) for event in sub)
            calls = {
                "GetModel": lambda: stub.GetModel(pb.GetModelRequest(), timeout=10),
                "GetStatus": lambda: stub.GetStatus(pb.GetStatusRequest(), timeout=10),
                "Subscribe": lambda: list(stub.Subscribe(pb.SubscribeRequest(), timeout=10)),
                "Detect": lambda: list(stub.Detect(iter([]), timeout=10)),
            }
            for name, call in calls.items():
                with pytest.raises(grpc.RpcError) as info:
                    call()
                assert info.value.code() == grpc.StatusCode.UNAVAILABLE, name
                assert "shutting down" in info.value.details()
    finally:
        running.stop()


def test_client_reconnects_with_backoff(random_bundle, padded_wav, sock_dir):
    """Subscribing before the daemon exists, across a daemon restart, until close()."""
    sock = sock_dir / "kwsd.sock"
    config = make_config(random_bundle, padded_wav, sock, realtime=True, loop=True)
    client = KwsdClient("unix:" + str(sock))
    states: list[str] = []
    events: list[pb.Event] = []

    def consume() -> None:
        for event in client.subscribe(include_speech_activity=True,
                                      backoff=Backoff(initial_s=0.05, max_s=0.3),
                                      on_state=lambda state, detail: states.append(state)):
            events.append(event)

    def wait_for(predicate, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, f"timed out waiting for {what}: {states}"
            time.sleep(0.05)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    wait_for(lambda: states.count("retrying") >= 2, "retries without a daemon")
    assert "connected" not in states
    running = start(config)
    try:
        wait_for(lambda: "connected" in states and events, "the first events")
    finally:
        running.stop()
    wait_for(lambda: "disconnected" in states, "the disconnect")
    seen = len(events)
    running = start(config)
    try:
        wait_for(lambda: states.count("connected") >= 2 and len(events) > seen,
                 "events after the restart")
    finally:
        client.close()
        thread.join(10)
        running.stop()
    assert not thread.is_alive()


def test_asyncio_client(random_bundle, speech_wav, padded_wav, sock_dir):
    running = start(make_config(random_bundle, padded_wav, sock_dir / "kwsd.sock",
                                realtime=True, loop=True))

    async def main():
        async with AsyncKwsdClient(running.address) as client:
            model = await client.get_model()
            status = await client.get_status()
            result = await client.detect(read_audio_16k(speech_wav), 16000)
            got = []
            async for event in client.subscribe(include_speech_activity=True):
                got.append(event)
                if len(got) == 2:
                    break
            return model, status, result, got

    try:
        model, status, result, got = asyncio.run(asyncio.wait_for(main(), 60))
    finally:
        running.stop()
    assert list(model.keywords) == ["yes", "no"]
    assert status.sources[0].id == "file"
    offline = offline_detections(random_bundle, speech_wav, running.config, "file")
    assert offline
    assert [(e.keyword, e.start_sample) for e in result.detections] == \
        [(d.keyword, round(d.start_s * 16000)) for d in offline]
    assert result.summary.detections == len(offline)
    assert len(got) == 2 and all(e.source_id == "file" for e in got)
