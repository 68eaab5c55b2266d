"""The sd_notify protocol against a real AF_UNIX datagram socket, with `kwsd serve` running
as a subprocess the way systemd runs it (NOTIFY_SOCKET, WATCHDOG_USEC)."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from audio.speech import espeak, silence
from kwsd.audio.audiofile import write_wav_16k
from kwsd.config import load_config
from kwsd.engine.daemon import Daemon
from kwsd.lifecycle import Lifecycle
from kwsd.systemd_notify import Notifier, watchdog_interval

REPO = Path(__file__).resolve().parents[2]


class NotifyListener:
    """What systemd does: a datagram socket; collects every message with its arrival time."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def wait_for(self, needle: str, timeout: float, after: int = 0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, (_, msg) in enumerate(self.messages[after:], start=after):
                if needle in msg.split("\n"):
                    return i
            time.sleep(0.05)
        raise AssertionError(f"no {needle!r} within {timeout} s; got {self.texts()}")

    def texts(self) -> list[str]:
        return [m for _, m in self.messages]

    def close(self) -> None:
        self._stop.set()
        self.sock.close()
        self._thread.join(2)


@pytest.fixture()
def wav(tmp_path):
    path = tmp_path / "talk.wav"
    write_wav_16k(path, np.concatenate([silence(0.5), espeak("yes no"), silence(0.5)]))
    return path


def test_serve_speaks_the_notify_protocol(tmp_path, random_bundle_path, wav):
    sock_path = str(tmp_path / "notify.sock")
    listener = NotifyListener(sock_path)
    env = dict(os.environ, NOTIFY_SOCKET=sock_path, WATCHDOG_USEC="1000000",
               PYTHONPATH=str(REPO / "daemon"), JOURNAL_STREAM="8:1")
    env.pop("WATCHDOG_PID", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "kwsd", "serve", "--model", str(random_bundle_path),
         "--wav", str(wav), "--realtime", "--loop", "--no-api"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        loading = listener.wait_for("STATUS=loading model", 60)
        ready = listener.wait_for("READY=1", 120, after=loading)
        ready_msg = listener.texts()[ready]
        assert any(line.startswith("STATUS=wav ") for line in ready_msg.split("\n"))
        assert all("WATCHDOG=1" not in m for m in listener.texts()[:ready])
        first = listener.wait_for("WATCHDOG=1", 10, after=ready)
        listener.wait_for("WATCHDOG=1", 10, after=first + 1)
        # Reload: RELOADING=1 with MONOTONIC_USEC, then READY=1 again.
        proc.send_signal(signal.SIGHUP)
        reloading = listener.wait_for("RELOADING=1", 10, after=ready + 1)
        msg = listener.texts()[reloading].split("\n")
        usec = [int(x.split("=")[1]) for x in msg if x.startswith("MONOTONIC_USEC=")]
        assert usec and abs(usec[0] / 1e6 - time.clock_gettime(time.CLOCK_MONOTONIC)) < 30
        listener.wait_for("READY=1", 30, after=reloading)
        # SIGTERM: STOPPING=1 and a clean exit within 2 s.
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
        elapsed = time.monotonic() - t0
        listener.wait_for("STOPPING=1", 1)
        assert rc == 0
        assert elapsed < 2.0, f"SIGTERM took {elapsed:.2f} s"
        err = proc.stderr.read()
        assert "Traceback" not in err
        assert not any(line[:4].isdigit() for line in err.splitlines())  # journal: no stamps
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        listener.close()


def test_abstract_socket_and_watchdog_env(monkeypatch):
    name = f"@kwsd-test-{os.getpid()}"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind("\0" + name[1:])
    server.settimeout(2)
    try:
        notifier = Notifier(name)
        assert notifier.enabled and notifier.status("hello")
        assert server.recv(100) == b"STATUS=hello"
    finally:
        server.close()
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 3.0
    monkeypatch.setenv("WATCHDOG_PID", "1")
    assert watchdog_interval() is None
    assert Notifier("").send("READY=1") is False          # outside systemd: a no-op


def test_stuck_pipeline_stops_the_watchdog_pings(tmp_path, random_bundle_path, wav,
                                                 monkeypatch):
    sock_path = str(tmp_path / "notify.sock")
    listener = NotifyListener(sock_path)
    monkeypatch.setenv("NOTIFY_SOCKET", sock_path)
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    config = load_config(None, {"model.path": str(random_bundle_path), "audio.source": "wav",
                                "audio.wav": str(wav), "audio.realtime": True,
                                "audio.loop": True})
    life = Lifecycle(config, api=False)
    daemon = life.daemon = Daemon(config)
    daemon.start()
    release = threading.Event()
    loop = threading.Thread(target=life._loop, args=(daemon,), daemon=True)
    loop.start()
    try:
        first = listener.wait_for("WATCHDOG=1", 10)
        listener.wait_for("WATCHDOG=1", 10, after=first + 1)
        # Fault injection: the pipeline hangs inside process() (as a deadlock would).
        runner = daemon._runners[0]
        real = runner.pipeline.process

        def hang(chunk):
            release.wait()
            return real(chunk)

        runner.pipeline.process = hang
        time.sleep(2.5)                 # let the heartbeat age past max_age (1 s)
        n = len([m for m in listener.texts() if m == "WATCHDOG=1"])
        time.sleep(3.0)
        assert len([m for m in listener.texts() if m == "WATCHDOG=1"]) == n
        assert not daemon.healthy(1.0)
        release.set()                   # unstuck: pings resume
        listener.wait_for("WATCHDOG=1", 10, after=len(listener.messages))
    finally:
        release.set()
        life.request_stop()
        loop.join(5)
        listener.close()
