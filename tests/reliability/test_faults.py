"""Faults on a real `kwsd serve` and on an in-process daemon: a bad config or a model replaced
with garbage (or a pickle) and SIGHUP (the old model keeps running, the error is logged),
clients that vanish mid-stream (SIGKILLed client processes), SIGTERM under load (exits within
the issue's 2 s — asserted with slack, reported exactly), and a virtual microphone that
disappears and comes back (status and health say degraded, then serving)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from kwsd.api.v1 import kwsd_pb2 as pb
from kwsd.api.v1 import kwsd_pb2_grpc as pb_grpc
from running_daemon import start

from .conftest import REPO
from .server import ServeProcess, Witness, detect_config, make_config, reference_detections


def _wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _health(channel) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="kwsd.v1.Kwsd"), timeout=10).status


def _write_config(path: Path, bundle: Path, sock: Path, threshold: float = 0.3) -> None:
    path.write_text(textwrap.dedent(f"""\
        [model]
        path = "{bundle}"
        [engine]
        warmup = false
        [api]
        socket = "{sock}"
        [decision.thresholds]
        yes = {threshold}
        no = {threshold}
        """))


@pytest.fixture
def serve(random_bundle, tmp_path, sock_dir):
    """`kwsd serve` on a copy of the bundle (the test may break it), reading silence in a loop."""
    from kwsd.audio.audiofile import write_wav_16k

    bundle = tmp_path / "bundle"
    shutil.copytree(random_bundle, bundle)
    wav = tmp_path / "silence.wav"
    write_wav_16k(wav, np.zeros(16000, np.int16))
    config = tmp_path / "kwsd.toml"
    sock = sock_dir / "kwsd.sock"
    _write_config(config, bundle, sock)
    proc = ServeProcess("--config", str(config), "--wav", str(wav), "--realtime", "--loop")
    try:
        proc.wait_log("ready:", 900)  # torch import alone can take minutes on a starved machine
        proc.bundle, proc.config, proc.sock = bundle, config, sock
        yield proc
    finally:
        proc.kill()


def test_health_is_serving_once_serve_says_ready(serve):
    """The moment `kwsd serve` logs "ready:" (and sends READY=1), health says SERVING. It said
    NOT_SERVING for up to a poll interval after that (GetStatus: serving, uptime under 0.25 s),
    because Check answered from a poller that had not looked since the sources started. That is
    the status of issue 11's failure of test_clients_vanish_mid_stream on a busy machine
    (NOT_SERVING, GetStatus serving with an uptime of 0.22 s)."""
    with grpc.insecure_channel(f"unix:{serve.sock}") as channel:
        health = _health(channel)
        status = pb_grpc.KwsdStub(channel).GetStatus(pb.GetStatusRequest())
    assert status.serving, status
    assert health == health_pb2.HealthCheckResponse.SERVING, (status, serve.log[-10:])


def _detect(channel, samples: np.ndarray) -> list[tuple]:
    from .server import detection_key

    def requests():
        yield detect_config()
        for i in range(0, len(samples), 8000):
            yield pb.DetectRequest(audio=samples[i:i + 8000].astype("<i2").tobytes())

    out = pb_grpc.KwsdStub(channel).Detect(requests(), timeout=120)
    return [detection_key(r.detection) for r in out if r.HasField("detection")]


def test_sighup_with_bad_config_or_garbage_model_keeps_the_old_one(serve, speech_samples,
                                                                  random_bundle, tmp_path):
    from kwsd.config import load_config

    samples = speech_samples[: 16000 * 8]
    reference = reference_detections(random_bundle, samples, load_config(serve.config))
    assert reference
    good_config = serve.config.read_text()
    original_model = (serve.bundle / "model.safetensors").read_bytes()
    marker = tmp_path / "UNPICKLED"
    with grpc.insecure_channel(f"unix:{serve.sock}") as channel:
        stub = pb_grpc.KwsdStub(channel)
        model_id = stub.GetModel(pb.GetModelRequest()).model_id

        def still_serving() -> None:
            assert serve.proc.poll() is None, serve.log[-20:]
            assert stub.GetModel(pb.GetModelRequest()).model_id == model_id
            assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
            assert _detect(channel, samples) == reference  # the old model, unchanged

        breakages = [
            ("bad TOML", lambda: serve.config.write_text("[model\n"), "not valid TOML"),
            ("bad value", lambda: serve.config.write_text(
                good_config + "[vad]\naggressiveness = 9\n"), "vad.aggressiveness"),
            ("garbage model", lambda: (serve.bundle / "model.safetensors").write_bytes(
                os.urandom(100_000)), "model.safetensors"),
            ("truncated model", lambda: (serve.bundle / "model.safetensors").write_bytes(
                original_model[: len(original_model) // 2]), "model.safetensors"),
            ("pickle as model", lambda: _write_trap(serve.bundle / "model.safetensors", marker),
             "model.safetensors"),
        ]
        for name, breakage, words in breakages:
            mark = len(serve.log)
            breakage()
            serve.signal(signal.SIGHUP)
            line = serve.wait_log("reload failed", 60, after=mark)
            assert words in line, (name, line)
            # GetStatus tells clients too (the SIGHUP handler runs on its own thread: wait)
            refused = _wait(lambda: stub.GetStatus(pb.GetStatusRequest()).last_reload_error, 30,
                            "GetStatus.last_reload_error")
            assert words in refused, (name, refused)
            still_serving()
            serve.config.write_text(good_config)
            (serve.bundle / "model.safetensors").write_bytes(original_model)
        assert not marker.exists(), "the pickle was unpickled"
        # A good reload still works afterwards (new thresholds are applied).
        _write_config(serve.config, serve.bundle, serve.sock, threshold=0.45)
        mark = len(serve.log)
        serve.signal(signal.SIGHUP)
        serve.wait_log("reloaded", 60, after=mark)
        info = stub.GetModel(pb.GetModelRequest())
        assert dict(info.thresholds) == pytest.approx({"yes": 0.45, "no": 0.45})
        status = stub.GetStatus(pb.GetStatusRequest())
        assert status.last_reload_error == "" and status.reloads == 1
    assert not any("Traceback" in line for line in serve.log), serve.log


def _write_trap(path: Path, marker: Path) -> None:
    import pickle

    class Trap:
        def __reduce__(self):
            return (Path.touch, (marker,))

    path.write_bytes(pickle.dumps({"w": Trap()}))


VANISHING_CLIENT = """
import sys, time, grpc
from kwsd.api.v1 import kwsd_pb2 as pb, kwsd_pb2_grpc as pb_grpc
ch = grpc.insecure_channel(sys.argv[1])
stub = pb_grpc.KwsdStub(ch)
subs = [stub.Subscribe(pb.SubscribeRequest(client_name=f"vanish{i}")) for i in range(3)]
for s in subs:
    s.initial_metadata()
def audio():
    yield pb.DetectRequest(config=pb.DetectConfig(sample_rate_hz=16000, encoding=pb.LINEAR16,
                                                  channels=1))
    while True:
        yield pb.DetectRequest(audio=bytes(3200))
        time.sleep(0.05)
calls = [stub.Detect(audio()) for _ in range(2)]
for c in calls:
    c.initial_metadata()
print("open", flush=True)
time.sleep(600)
"""


def _freed(status) -> bool:
    return status.streams_open == 0 and not any(
        x.name.startswith("grpc:vanish") for x in status.subscribers)


def test_clients_vanish_mid_stream(serve):
    """Client processes SIGKILLed with open Detect and Subscribe streams: their slots and
    subscriptions are freed, and the daemon serves the next client."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "daemon"))
    with grpc.insecure_channel(f"unix:{serve.sock}") as channel:
        stub = pb_grpc.KwsdStub(channel)
        for _ in range(2):
            client = subprocess.Popen([sys.executable, "-c", VANISHING_CLIENT,
                                       f"unix:{serve.sock}"], env=env, stdout=subprocess.PIPE,
                                      text=True)
            try:
                assert client.stdout.readline().strip() == "open"
                status = stub.GetStatus(pb.GetStatusRequest())
                assert status.streams_open == 2
                assert sum(s.name.startswith("grpc:vanish") for s in status.subscribers) == 3
            finally:
                client.kill()
                client.wait()
            _wait(lambda: _freed(stub.GetStatus(pb.GetStatusRequest())), 30,
                  "vanished streams to be freed")
        health = _health(channel)
        assert health == health_pb2.HealthCheckResponse.SERVING, (
            stub.GetStatus(pb.GetStatusRequest()), serve.log[-30:])
        responses = list(stub.Detect(iter([detect_config(), pb.DetectRequest(audio=bytes(3200))]),
                                     timeout=60))
        assert responses[-1].summary.input_frames == 1600


def test_sigterm_under_load(serve, speech_samples):
    """SIGTERM with Detect streams and subscribers busy: the process exits (status 0) within
    the issue's 2 s (asserted < 5 s: the machine is shared; the figure is printed), every
    stream ends with a status (no hang), subscribers end cleanly."""
    results: dict[str, object] = {}
    address = f"unix:{serve.sock}"
    channel = grpc.insecure_channel(address)
    stub = pb_grpc.KwsdStub(channel)
    started = threading.Barrier(4 + 1, timeout=120)

    def detect(i: int) -> None:
        def requests():
            yield detect_config(label=f"load{i}")
            started.wait()
            while True:  # real-time speech until the daemon goes away
                for j in range(0, len(speech_samples), 1600):
                    yield pb.DetectRequest(audio=speech_samples[j:j + 1600].tobytes())
                    time.sleep(0.1)
        try:
            for _ in stub.Detect(requests(), timeout=120):
                pass
            results[f"detect{i}"] = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            results[f"detect{i}"] = exc.code()

    def subscribe(i: int) -> None:
        call = stub.Subscribe(pb.SubscribeRequest(client_name=f"s{i}",
                                                  include_speech_activity=True), timeout=120)
        call.initial_metadata()
        started.wait()
        try:
            for _ in call:
                pass
            results[f"sub{i}"] = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            results[f"sub{i}"] = exc.code()

    threads = [threading.Thread(target=detect, args=(i,)) for i in range(2)]
    threads += [threading.Thread(target=subscribe, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    started.wait()
    time.sleep(2.0)  # streams are busy
    t0 = time.monotonic()
    serve.signal(signal.SIGTERM)
    rc = serve.proc.wait(30)
    elapsed = time.monotonic() - t0
    for t in threads:
        t.join(30)
    channel.close()
    print(f"\nSIGTERM under load: exit {rc} after {elapsed:.2f} s; streams ended: {results}")
    assert rc == 0, serve.log[-20:]
    assert elapsed < 5.0, f"SIGTERM took {elapsed:.2f} s (issue: < 2 s)"
    assert not any(t.is_alive() for t in threads), "a client stream hung after SIGTERM"
    assert results["sub0"] == results["sub1"] == grpc.StatusCode.OK
    for i in range(2):  # told the daemon is going away, or cut off by its exit
        assert results[f"detect{i}"] in (grpc.StatusCode.UNAVAILABLE,
                                         grpc.StatusCode.CANCELLED), results
    assert any("stopped in" in line for line in serve.log)


# --- the microphone disappears and comes back ------------------------------------------------

def test_microphone_loss_and_return_reported_truthfully(random_bundle, speech_samples, sock_dir,
                                                      tmp_path, monkeypatch):
    sys.path.insert(0, str(REPO / "tests"))
    from audio.virtual_mic import VirtualMic, available

    why = available()
    if why:
        pytest.skip(why)
    mic = VirtualMic(tmp_path / "vmic")
    mic.start()
    for key, value in mic.env().items():
        monkeypatch.setenv(key, value)
    config = make_config(random_bundle, sock_dir / "kwsd.sock", audio={
        "source": "microphone", "source_id": "mic", "retry_initial_s": 0.2,
        "retry_max_s": 1.0, "stall_timeout_s": 1.0})
    running = start(config)
    witness = None
    try:
        with grpc.insecure_channel(running.address) as channel:
            stub = pb_grpc.KwsdStub(channel)

            def state() -> int:
                return stub.GetStatus(pb.GetStatusRequest()).sources[0].state

            _wait(lambda: state() == pb.SOURCE_STATE_RUNNING, 60, "microphone running")
            assert _health(channel) == health_pb2.HealthCheckResponse.SERVING
            sub = stub.Subscribe(pb.SubscribeRequest(include_speech_activity=True,
                                                     client_name="mic-watch"), timeout=120)
            sub.initial_metadata()
            samples = speech_samples[: 16000 * 10]
            witness = Witness(running.address, samples, pace_s=0.05).start()

            mic.kill()  # the sound server dies: device gone
            _wait(lambda: state() == pb.SOURCE_STATE_DEGRADED, 30, "DEGRADED")
            status = stub.GetStatus(pb.GetStatusRequest())
            assert status.sources[0].state_detail or status.sources[0].detail
            _wait(lambda: _health(channel) == health_pb2.HealthCheckResponse.NOT_SERVING, 10,
                  "health NOT_SERVING while degraded")
            assert status.serving and running.daemon.healthy()  # the daemon itself is fine

            mic.start()  # it comes back
            _wait(lambda: state() == pb.SOURCE_STATE_RUNNING, 60, "RUNNING again")
            _wait(lambda: _health(channel) == health_pb2.HealthCheckResponse.SERVING, 10,
                  "health SERVING again")
            mic.feed(np.concatenate([np.zeros(8000, np.int16), speech_samples[: 16000 * 4],
                                     np.zeros(32000, np.int16)]))
            kinds = set()
            for event in sub:
                kinds.add(event.kind)
                if pb.EVENT_KIND_SPEECH_END in kinds:
                    break
            assert pb.EVENT_KIND_SPEECH_BEGIN in kinds
            sub.cancel()
            witness.join()
            assert witness.detections == reference_detections(random_bundle, samples, config)
    finally:
        if witness is not None:
            witness.release()
        running.stop()
        mic.stop()


def test_stdin_read_error_ends_the_source_truthfully():
    """An input that fails to read (EIO, as from a terminal that went away) ends the stdin
    source with a reason, instead of killing its thread while status kept saying `running`
    and `kwsd serve --exit-at-end` waited forever."""
    import errno
    import io

    from kwsd.audio.source import SourceState
    from kwsd.audio.stdin_source import StdinSource

    class VanishedTerminal(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:
            raise OSError(errno.EIO, "Input/output error")

    source = StdinSource("stdin", stream=io.BufferedReader(VanishedTerminal()))
    source.start()
    try:
        _wait(lambda: source.state == SourceState.STOPPED, 10, "the source to stop")
        assert source.read(1.0) is None and source.finished
        assert "cannot read the input" in source.detail
    finally:
        source.stop()
