"""TCP transport: TLS with a throw-away CA, bearer token (required, constant-time checked,
not needed on the Unix socket, not needed for health), mutual TLS, and the refusal of plain TCP
unless it is loopback with insecure_loopback."""

from __future__ import annotations

import socket

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kwsd.api.v1 import kwsd_pb2 as pb
from kwsd.api.v1 import kwsd_pb2_grpc as pb_grpc
from kwsd.audio.audiofile import read_audio_16k
from kwsd.client import KwsdClient
from kwsd.config import ConfigError
from running_daemon import start

from .certs import make_certs
from .conftest import make_config

TOKEN = "s3cret-token-for-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def tls_server(random_bundle, speech_wav, certs):
    import shutil
    import tempfile
    from pathlib import Path

    sock_dir = Path(tempfile.mkdtemp(prefix="kwsd-t-", dir="/tmp"))
    port = free_port()
    config = make_config(random_bundle, speech_wav, sock_dir / "kwsd.sock", realtime=False,
                         api={"tcp": f"127.0.0.1:{port}", "tls_cert": str(certs.server_cert),
                              "tls_key": str(certs.server_key), "token": TOKEN})
    running = start(config)
    yield running, port
    running.stop()
    shutil.rmtree(sock_dir, ignore_errors=True)


def _tls_stub(port: int, certs):
    creds = grpc.ssl_channel_credentials(root_certificates=certs.ca.read_bytes())
    channel = grpc.secure_channel(f"localhost:{port}", creds)
    return channel, pb_grpc.KwsdStub(channel)


def test_tls_with_token(tls_server, certs, speech_wav):
    running, port = tls_server
    assert running.handle.addresses == [running.address, f"127.0.0.1:{port}"]
    with KwsdClient(f"localhost:{port}", token=TOKEN, tls_ca=str(certs.ca)) as client:
        assert list(client.get_model().keywords) == ["yes", "no"]
        result = client.detect(read_audio_16k(speech_wav), 16000)
        assert result.summary.samples_processed == len(read_audio_16k(speech_wav))
        assert client.get_status().serving
    channel, stub = _tls_stub(port, certs)
    with channel:  # a streaming call through the token check stays open
        call = stub.Subscribe(pb.SubscribeRequest(),
                              metadata=(("authorization", f"Bearer {TOKEN}"),))
        call.initial_metadata()
        assert not call.done()
        call.cancel()


@pytest.mark.parametrize("metadata,words", [
    ((), "missing token"),
    ((("authorization", "Bearer wrong"),), "wrong token"),
    ((("authorization", TOKEN),), "wrong token"),  # no "Bearer " scheme
    ((("authorization", f"Bearer {TOKEN}x"),), "wrong token"),
], ids=["none", "wrong", "no scheme", "longer"])
def test_token_required_on_tcp(tls_server, certs, metadata, words):
    _, port = tls_server
    channel, stub = _tls_stub(port, certs)
    with channel:
        for call in (lambda: stub.GetModel(pb.GetModelRequest(), metadata=metadata, timeout=10),
                     lambda: list(stub.Subscribe(pb.SubscribeRequest(), metadata=metadata,
                                                 timeout=10)),
                     lambda: list(stub.Detect(iter([]), metadata=metadata, timeout=10))):
            with pytest.raises(grpc.RpcError) as info:
                call()
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert words in info.value.details()


def test_health_needs_no_token_and_unix_socket_needs_none(tls_server, certs):
    running, port = tls_server
    channel, _ = _tls_stub(port, certs)
    with channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="kwsd.v1.Kwsd"), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    with KwsdClient(running.address) as client:  # file permissions admitted this caller
        assert client.get_model().model_id == running.daemon.bundle.model_id


def test_tls_client_refuses_wrong_ca(tls_server, tmp_path):
    _, port = tls_server
    other = make_certs(tmp_path / "other")
    with KwsdClient(f"localhost:{port}", token=TOKEN, tls_ca=str(other.ca),
                    timeout_s=5) as client:
        with pytest.raises(grpc.RpcError) as info:
            client.get_model()
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls(random_bundle, speech_wav, certs, sock_dir):
    port = free_port()
    config = make_config(random_bundle, speech_wav, sock_dir / "kwsd.sock", realtime=False,
                         api={"tcp": f"127.0.0.1:{port}", "tls_cert": str(certs.server_cert),
                              "tls_key": str(certs.server_key),
                              "tls_client_ca": str(certs.ca)})
    running = start(config)
    try:
        with KwsdClient(f"localhost:{port}", tls_ca=str(certs.ca), tls_cert=str(certs.client_cert),
                        tls_key=str(certs.client_key)) as client:
            assert list(client.get_model().keywords) == ["yes", "no"]
        with KwsdClient(f"localhost:{port}", tls_ca=str(certs.ca), timeout_s=5) as client:
            with pytest.raises(grpc.RpcError) as info:
                client.get_model()  # no client certificate: the handshake fails
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        running.stop()


def test_plain_tcp_only_on_loopback_with_insecure_loopback(random_bundle, speech_wav, sock_dir):
    from kwsd.engine.daemon import Daemon
    from kwsd.server.grpc_server import start as start_server

    port = free_port()
    refused = {
        "loopback without the flag": ({"tcp": f"127.0.0.1:{port}"}, "api.insecure_loopback"),
        "any address": ({"tcp": f"0.0.0.0:{port}", "insecure_loopback": True}, "api.tcp"),
        "LAN address": ({"tcp": f"192.0.2.1:{port}", "insecure_loopback": True}, "api.tcp"),
        "client CA without TLS": ({"tcp": f"127.0.0.1:{port}", "insecure_loopback": True,
                                   "tls_client_ca": "/nonexistent"}, "api.tls_client_ca"),
    }
    for what, (api, option) in refused.items():
        config = make_config(random_bundle, speech_wav, sock_dir / "kwsd.sock", api=api)
        with pytest.raises(ConfigError) as info:
            start_server(Daemon(config), config.api)  # refused before anything is bound
        assert info.value.option == option, what
    assert not (sock_dir / "kwsd.sock").exists()

    config = make_config(random_bundle, speech_wav, sock_dir / "kwsd.sock", realtime=False,
                         api={"tcp": f"127.0.0.1:{port}", "insecure_loopback": True})
    running = start(config)
    try:
        with pytest.raises(ValueError, match="insecure_loopback"):
            KwsdClient(f"127.0.0.1:{port}")  # the client has the same rule
        with KwsdClient(f"127.0.0.1:{port}", insecure_loopback=True) as client:
            assert list(client.get_model().keywords) == ["yes", "no"]
    finally:
        running.stop()


def test_client_name_allow_list(random_bundle, speech_wav, certs, sock_dir):
    port = free_port()
    config = make_config(random_bundle, speech_wav, sock_dir / "kwsd.sock", realtime=False,
                         api={"tcp": f"127.0.0.1:{port}", "tls_cert": str(certs.server_cert),
                              "tls_key": str(certs.server_key),
                              "tls_client_ca": str(certs.ca),
                              "tls_client_names": ["kwsd-test-client"]})
    running = start(config)
    try:
        with KwsdClient(f"localhost:{port}", tls_ca=str(certs.ca), tls_cert=str(certs.client_cert),
                        tls_key=str(certs.client_key)) as client:
            assert list(client.get_model().keywords) == ["yes", "no"]
    finally:
        running.stop()
    config = make_config(random_bundle, speech_wav, sock_dir / "kwsd.sock", realtime=False,
                         api={"tcp": f"127.0.0.1:{port}", "tls_cert": str(certs.server_cert),
                              "tls_key": str(certs.server_key),
                              "tls_client_ca": str(certs.ca),
                              "tls_client_names": ["somebody-else"]})
    running = start(config)
    try:
        with KwsdClient(f"localhost:{port}", tls_ca=str(certs.ca), tls_cert=str(certs.client_cert),
                        tls_key=str(certs.client_key)) as client:
            with pytest.raises(grpc.RpcError) as info:
                client.get_model()
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "kwsd-test-client" in info.value.details()
    finally:
        running.stop()
