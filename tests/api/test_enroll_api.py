"""EnrollKeyword / ListKeywords / DeleteKeyword on a real daemon and server, with the demo
model and a real recording: the enrolled keyword is then detected through Detect (marked
enrolled) and listed by GetModel; bad names and bad audio are INVALID_ARGUMENT; over TCP the
changes are refused unless api.enroll_over_tcp is set."""

from __future__ import annotations

import shutil
import socket

import grpc
import numpy as np
import pytest
from kwsd.audio.audiofile import read_audio_16k
from kwsd.client import KwsdClient
from recordings import DATA, SPEECH_WAV
from running_daemon import start

from .conftest import make_config

OPERATOR_17 = DATA / "wuw-dev" / "00017" / "WUWII00017_001.wav"


@pytest.fixture
def env(tmp_path, monkeypatch):
    bank = tmp_path / "bank"
    bank.mkdir()
    shutil.copy(SPEECH_WAV, bank / "speech.wav")
    monkeypatch.setenv("KWSD_NEGATIVES_DIR", str(bank))
    monkeypatch.setenv("KWSD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("KWSD_KEYWORDS_DIR", str(tmp_path / "keywords"))
    return tmp_path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_enroll_detect_list_delete_on_the_unix_socket(env, demo_bundle, silence_wav, sock_dir):
    cfg = make_config(demo_bundle, silence_wav, sock_dir / "k.sock", threshold=None)
    running = start(cfg)
    try:
        with KwsdClient(f"unix:{running.socket}") as client:
            example = read_audio_16k(OPERATOR_17)
            res = client.enroll_keyword("Hey  Op", [example])
            assert res.enrolled, [c.problems for c in res.checks]
            assert res.keyword.name == "hey op" and res.keyword.usable
            assert 0 < res.keyword.threshold < 1 and res.keyword.encoder_id.startswith("sha256:")
            assert len(res.checks) == 1 and not res.checks[0].problems

            info = client.get_model()
            assert list(info.enrolled_keywords) == ["hey op"]
            assert "hey op" in info.keywords and "hey op" in info.thresholds
            assert [k.name for k in client.list_keywords()] == ["hey op"]

            stream = np.concatenate([read_audio_16k(SPEECH_WAV), np.zeros(8000, np.int16),
                                     example, np.zeros(8000, np.int16)])
            dets = client.detect(stream, keywords=["hey op"]).detections
            assert len(dets) == 1 and dets[0].enrolled and dets[0].keyword == "hey op"

            bad = client.enroll_keyword("hey op", [example[9000:10600]])   # 0.1 s of the word
            assert not bad.enrolled and "too short" in bad.checks[0].problems[0]

            with pytest.raises(grpc.RpcError) as err:
                client.enroll_keyword("hey/op", [example])
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "bad keyword name" in err.value.details()
            with pytest.raises(grpc.RpcError) as err:
                client.enroll_keyword(info.keywords[0], [example])
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT

            client.delete_keyword("hey op")
            assert client.list_keywords() == []
            assert list(client.get_model().enrolled_keywords) == []
            with pytest.raises(grpc.RpcError) as err:
                client.delete_keyword("hey op")
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        running.stop()


def test_odd_audio_bytes_are_invalid(env, demo_bundle, silence_wav, sock_dir):
    from kwsd.api.v1 import kwsd_pb2 as pb
    from kwsd.api.v1 import kwsd_pb2_grpc as pb_grpc

    running = start(make_config(demo_bundle, silence_wav, sock_dir / "k.sock", threshold=None))
    try:
        with grpc.insecure_channel(f"unix:{running.socket}") as ch:
            stub = pb_grpc.KwsdStub(ch)
            reqs = [pb.EnrollRequest(config=pb.EnrollConfig(
                        name="hey op", sample_rate_hz=16000, encoding=pb.LINEAR16, channels=1)),
                    pb.EnrollRequest(example=b"\x01\x02\x03")]
            with pytest.raises(grpc.RpcError) as err:
                stub.EnrollKeyword(iter(reqs), timeout=60)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "example 1" in err.value.details()
    finally:
        running.stop()


@pytest.mark.parametrize("allowed", [False, True])
def test_tcp_callers_may_enroll_only_when_configured(env, demo_bundle, silence_wav, sock_dir,
                                                     allowed):
    port = _free_port()
    api = {"tcp": f"127.0.0.1:{port}", "insecure_loopback": True, "enroll_over_tcp": allowed}
    running = start(make_config(demo_bundle, silence_wav, sock_dir / "k.sock", threshold=None,
                                api=api))
    try:
        with KwsdClient(f"127.0.0.1:{port}", insecure_loopback=True) as client:
            example = read_audio_16k(OPERATOR_17)
            if allowed:
                assert client.enroll_keyword("hey op", [example]).enrolled
                client.delete_keyword("hey op")
            else:
                with pytest.raises(grpc.RpcError) as err:
                    client.enroll_keyword("hey op", [example])
                assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
                assert "enroll_over_tcp" in err.value.details()
                with pytest.raises(grpc.RpcError) as err:
                    client.delete_keyword("hey op")
                assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert client.list_keywords() == []          # reading is allowed either way
    finally:
        running.stop()
