"""The API on a real daemon over a Unix socket, with a random-weight bundle (plumbing): model
and status, health, reflection, socket permissions, Detect parity with the offline pipeline,
and a status code with a useful message for every bad request."""

from __future__ import annotations

import os
import stat
import threading

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from kwsd.api.v1 import kwsd_pb2 as pb
from kwsd.api.v1 import kwsd_pb2_grpc as pb_grpc
from kwsd.audio.audiofile import read_audio_16k
from kwsd.client import KwsdClient
from recordings import WUW_8KHZ_WAV
from running_daemon import start

from .conftest import make_config, offline_detections

MAX_CHUNK = 8000


@pytest.fixture(scope="module")
def server(random_bundle, speech_wav, tmp_path_factory):
    import shutil
    import tempfile
    from pathlib import Path

    sock_dir = Path(tempfile.mkdtemp(prefix="kwsd-t-", dir="/tmp"))
    config = make_config(random_bundle, speech_wav, sock_dir / "run" / "kwsd.sock",
                         realtime=False,
                         api={"max_streams": 2, "max_chunk_bytes": MAX_CHUNK})
    running = start(config)
    yield running
    running.stop()
    shutil.rmtree(sock_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def stub(server):
    channel = grpc.insecure_channel(server.address)
    yield pb_grpc.KwsdStub(channel)
    channel.close()


def _config(**kw) -> pb.DetectRequest:
    fields = {"sample_rate_hz": 16000, "encoding": pb.LINEAR16, "channels": 1, **kw}
    return pb.DetectRequest(config=pb.DetectConfig(**fields))


def _audio(n_bytes: int = 3200) -> pb.DetectRequest:
    return pb.DetectRequest(audio=bytes(n_bytes))


def test_socket_is_private(server):
    mode = stat.S_IMODE(os.stat(server.socket).st_mode)
    assert mode == 0o660
    parent = stat.S_IMODE(os.stat(os.path.dirname(server.socket)).st_mode)
    assert parent == 0o700
    assert server.handle.address == server.address


def test_get_model(stub, server):
    info = stub.GetModel(pb.GetModelRequest())
    bundle = server.daemon.bundle
    assert list(info.keywords) == ["yes", "no"]
    assert list(info.labels) == list(bundle.labels)
    assert dict(info.thresholds) == pytest.approx({"yes": 0.3, "no": 0.3})
    assert info.model_id == bundle.model_id == f"{info.name}-{info.version}"
    assert info.sample_rate_hz == 16000
    assert info.window_samples == bundle.window_samples
    assert info.hop_samples == bundle.hop_samples
    assert info.hop.ToNanoseconds() == bundle.hop_samples * 1_000_000_000 // 16000
    assert info.limits.max_streams == 2 and info.limits.max_chunk_bytes == MAX_CHUNK


def test_get_status(stub, server):
    server.daemon.wait_sources(60)
    status = stub.GetStatus(pb.GetStatusRequest())
    assert status.serving and not status.stopping
    assert status.uptime.ToNanoseconds() > 0
    [source] = status.sources
    assert source.id == "file" and source.kind == "wav"
    assert source.state == pb.SOURCE_STATE_STOPPED  # the file was read to its end
    assert 0.0 < status.vad_duty_cycle <= 1.0
    assert status.real_time_factor > 0
    assert status.model_id == server.daemon.bundle.model_id


def test_health_serving(server):
    with grpc.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", "kwsd.v1.Kwsd"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service))
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_services(server):
    with grpc.insecure_channel(server.address) as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        [reply] = list(stub.ServerReflectionInfo(iter([request])))
        names = {s.name for s in reply.list_services_response.service}
        assert {"kwsd.v1.Kwsd", "grpc.health.v1.Health",
                "grpc.reflection.v1alpha.ServerReflection"} <= names
        request = reflection_pb2.ServerReflectionRequest(file_containing_symbol="kwsd.v1.Kwsd")
        [reply] = list(stub.ServerReflectionInfo(iter([request])))
        assert reply.file_descriptor_response.file_descriptor_proto


def _same(api_events, offline) -> None:
    got = [(e.keyword, e.start_sample / 16000, e.end_sample / 16000) for e in api_events]
    want = [(d.keyword, d.start_s, d.end_s) for d in offline]
    assert got == want
    assert [e.confidence for e in api_events] == pytest.approx([d.confidence for d in offline],
                                                               abs=1e-6)


def test_detect_matches_offline_pipeline(server, random_bundle, speech_wav):
    """Detect on a WAV file gives what `kwsd eval` gives on it (same Pipeline, offline)."""
    offline = offline_detections(random_bundle, speech_wav, server.config, "file")
    assert offline, "the random bundle at threshold 0.3 should fire on this file"
    with KwsdClient(server.address) as client:
        result = client.detect_wav(speech_wav, label="parity")
    _same(result.detections, offline)
    n = len(read_audio_16k(speech_wav))
    summary = result.summary
    assert summary.samples_processed == n and summary.input_frames == n
    assert summary.audio_duration.ToNanoseconds() == n * 1_000_000_000 // 16000
    assert summary.detections == len(offline)
    assert summary.stream_id.startswith("detect:parity:")
    for event in result.detections:
        assert event.kind == pb.EVENT_KIND_DETECTION
        assert event.source_id == summary.stream_id
        assert event.model_id == server.daemon.bundle.model_id
        assert event.start_offset.ToNanoseconds() == event.start_sample * 62_500
        assert event.end_offset.ToNanoseconds() == event.end_sample * 62_500
        assert event.threshold == pytest.approx(0.3)
    assert [e.sequence for e in result.detections] == list(range(1, len(offline) + 1))


def test_detect_stereo_numpy_equals_mono(server, random_bundle, speech_wav):
    """Two identical channels average to the same mono samples: same detections."""
    samples = read_audio_16k(speech_wav)
    offline = offline_detections(random_bundle, speech_wav, server.config, "file")
    with KwsdClient(server.address) as client:
        result = client.detect(np.stack([samples, samples], axis=1), 16000, chunk_ms=37)
    _same(result.detections, offline)
    assert result.summary.input_frames == len(samples)


def test_detect_8khz_matches_offline_pipeline(server, random_bundle):
    """An 8 kHz telephone recording sent at its own rate: the daemon's streaming resampler
    gives the samples that `kwsd eval`'s whole-file resampling gives, hence the same events."""
    wav = WUW_8KHZ_WAV
    offline = offline_detections(random_bundle, wav, server.config, "file")
    assert offline
    with KwsdClient(server.address) as client:
        result = client.detect_wav(wav)
    _same(result.detections, offline)
    assert result.summary.input_frames * 2 == result.summary.samples_processed


def test_detect_keyword_filter(server):
    with KwsdClient(server.address) as client:
        samples = read_audio_16k(server.config.audio.wav)
        result = client.detect(samples, 16000, keywords=["yes"])
    assert all(e.keyword == "yes" for e in result.detections)


def _detect_error(stub, requests) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        list(stub.Detect(iter(requests), timeout=30))
    return info.value


BAD_DETECTS = [
    ("no messages", [], grpc.StatusCode.INVALID_ARGUMENT, "before its config"),
    ("audio first", [_audio()], grpc.StatusCode.INVALID_ARGUMENT, "audio before config"),
    ("empty first", [pb.DetectRequest()], grpc.StatusCode.INVALID_ARGUMENT,
     "audio before config"),
    ("no encoding", [_config(encoding=pb.ENCODING_UNSPECIFIED)],
     grpc.StatusCode.INVALID_ARGUMENT, "encoding"),
    ("bad encoding", [_config(encoding=7)], grpc.StatusCode.INVALID_ARGUMENT, "encoding"),
    ("no rate", [_config(sample_rate_hz=0)], grpc.StatusCode.INVALID_ARGUMENT,
     "sample_rate_hz"),
    ("low rate", [_config(sample_rate_hz=4000)], grpc.StatusCode.INVALID_ARGUMENT,
     "sample_rate_hz 4000"),
    ("high rate", [_config(sample_rate_hz=96000)], grpc.StatusCode.INVALID_ARGUMENT,
     "sample_rate_hz 96000"),
    ("no channels", [_config(channels=0)], grpc.StatusCode.INVALID_ARGUMENT, "channels"),
    ("3 channels", [_config(channels=3)], grpc.StatusCode.INVALID_ARGUMENT, "channels 3"),
    ("unknown keyword", [_config(keywords=["banana"])], grpc.StatusCode.INVALID_ARGUMENT,
     "banana"),
    ("bad confidence", [_config(min_confidence=1.5)], grpc.StatusCode.INVALID_ARGUMENT,
     "min_confidence"),
    ("bad label", [_config(label="a b/c")], grpc.StatusCode.INVALID_ARGUMENT, "label"),
    ("config twice", [_config(), _audio(), _config()], grpc.StatusCode.INVALID_ARGUMENT,
     "config sent twice"),
    ("empty request", [_config(), pb.DetectRequest()], grpc.StatusCode.INVALID_ARGUMENT,
     "empty DetectRequest"),
    ("odd bytes", [_config(), _audio(3)], grpc.StatusCode.INVALID_ARGUMENT,
     "not a whole number"),
    ("stereo half frame", [_config(channels=2), _audio(6)], grpc.StatusCode.INVALID_ARGUMENT,
     "not a whole number"),
    ("chunk too long", [_config(), _audio(MAX_CHUNK + 2)], grpc.StatusCode.RESOURCE_EXHAUSTED,
     "longer than the limit"),
    ("message too big", [_config(), _audio(MAX_CHUNK * 4)],
     grpc.StatusCode.RESOURCE_EXHAUSTED, "larger than max"),
]


@pytest.mark.parametrize("requests,code,words", [b[1:] for b in BAD_DETECTS],
                         ids=[b[0] for b in BAD_DETECTS])
def test_bad_detect_requests(stub, requests, code, words):
    err = _detect_error(stub, requests)
    assert err.code() == code, err.details()
    assert words in err.details()


@pytest.mark.parametrize("request_,words", [
    (pb.SubscribeRequest(keywords=["banana"]), "banana"),
    (pb.SubscribeRequest(min_confidence=-0.5), "min_confidence"),
], ids=["unknown keyword", "bad confidence"])
def test_bad_subscribe_requests(stub, request_, words):
    with pytest.raises(grpc.RpcError) as info:
        list(stub.Subscribe(request_, timeout=10))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert words in info.value.details()


def test_too_many_streams(stub):
    """Two Detect streams are open (the limit); a third is refused; closing one frees it."""
    release = threading.Event()

    def held():
        yield _config()
        release.wait(30)

    calls = [stub.Detect(held()) for _ in range(2)]
    try:
        for call in calls:  # headers come once the stream's config is accepted
            headers = dict(call.initial_metadata())
            assert headers["kwsd-stream-id"].startswith("detect:")
        assert stub.GetStatus(pb.GetStatusRequest()).streams_open == 2
        err = _detect_error(stub, [_config()])
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "limit 2" in err.details()
    finally:
        release.set()
        for call in calls:
            list(call)
    responses = list(stub.Detect(iter([_config(), _audio()]), timeout=30))
    assert responses[-1].HasField("summary")


def test_too_many_subscribers(stub, server):
    servicer = server.handle.servicer
    limit, servicer.max_subscribers = servicer.max_subscribers, 1  # the default is 64
    first = stub.Subscribe(pb.SubscribeRequest(), timeout=30)
    try:
        first.initial_metadata()
        with pytest.raises(grpc.RpcError) as info:
            list(stub.Subscribe(pb.SubscribeRequest(), timeout=10))
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "too many subscribers (limit 1)" in info.value.details()
    finally:
        first.cancel()
        servicer.max_subscribers = limit
