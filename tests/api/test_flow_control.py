"""A Detect client that sends faster than the daemon reads is held back by HTTP/2 flow
control, not buffered: with the daemon frozen (SIGSTOP), the client can push only a bounded
amount however much it offers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import grpc
from kwsd.api.v1 import kwsd_pb2 as pb
from kwsd.api.v1 import kwsd_pb2_grpc as pb_grpc

from .conftest import REPO

CHUNK = 64 * 1024
OFFERED = 2000 * CHUNK  # 128 MiB, more than an hour of 16 kHz audio
BOUND = 16 * 1024 * 1024


def test_fast_detect_client_is_held_back(random_bundle, silence_wav, sock_dir):
    sock = sock_dir / "kwsd.sock"
    env = {**os.environ, "PYTHONPATH": str(REPO / "daemon")}
    server = subprocess.Popen(
        [sys.executable, "-m", "kwsd", "serve", "--model", str(random_bundle), "--wav",
         str(silence_wav), "--socket", str(sock)], env=env, cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sent = 0
    stopped = threading.Event()

    def requests():
        nonlocal sent
        yield pb.DetectRequest(config=pb.DetectConfig(sample_rate_hz=16000,
                                                      encoding=pb.LINEAR16, channels=1))
        while sent < OFFERED and not stopped.is_set():
            yield pb.DetectRequest(audio=bytes(CHUNK))
            sent += CHUNK

    try:
        channel = grpc.insecure_channel(f"unix:{sock}")
        grpc.channel_ready_future(channel).result(timeout=60)
        call = pb_grpc.KwsdStub(channel).Detect(requests())
        call.initial_metadata()  # config accepted: the daemon is reading this stream
        os.kill(server.pid, signal.SIGSTOP)
        try:
            before = sent
            time.sleep(2.0)  # long enough to push everything if nothing held it back
            pushed_while_frozen = sent - before
        finally:
            os.kill(server.pid, signal.SIGCONT)
        assert pushed_while_frozen < BOUND, f"{pushed_while_frozen} bytes went nowhere"
        assert sent < OFFERED
        stopped.set()
        call.cancel()
        channel.close()
    finally:
        server.terminate()
        _, stderr = server.communicate(timeout=30)
    assert server.returncode == 0, stderr
