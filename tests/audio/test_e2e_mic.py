"""End to end through a real sound server: virtual microphone -> PyAudio -> kwsd serve."""

import signal
import time
from pathlib import Path

import numpy as np
from kwsd.audio.chunk import SAMPLE_RATE
from kwsd.config import load_config
from kwsd.engine.daemon import Daemon
from kwsd.events import EventKind

from .serve_proc import Serve
from .speech import espeak, silence

REPO = Path(__file__).resolve().parents[2]
TOL = int(0.15 * SAMPLE_RATE)


def test_serve_hears_the_virtual_microphone_and_stops_cleanly_mid_speech(
        virtual_mic, random_bundle_path):
    serve = Serve("--model", str(random_bundle_path))
    try:
        serve.wait_log("capturing from", 90)
        serve.wait_log("ready:", 90)
        a, b = espeak("hello there"), espeak("yes please, thank you")
        virtual_mic.feed(silence(1.0))
        ia = virtual_mic.feed(a)
        virtual_mic.feed(silence(2.0))
        ib = virtual_mic.feed(b)
        virtual_mic.feed(silence(2.0))
        ends = serve.wait_events("speech_end", 2, 30)
        begins = serve.wait_events("speech_begin", 2, 1)
        # The spoken intervals, as the daemon saw them, are where they were written.
        assert abs((begins[1]["start_sample"] - begins[0]["start_sample"]) - (ib - ia)) <= TOL
        assert abs((ends[0]["start_sample"] - begins[0]["start_sample"]) - len(a)) <= TOL
        assert abs((ends[1]["start_sample"] - begins[1]["start_sample"]) - len(b)) <= TOL
        # SIGTERM while someone speaks: a clean exit within 2 s.
        virtual_mic.feed(espeak("this is a rather long sentence that keeps on going " * 3))
        serve.wait_events("speech_begin", 3, 30)
        t0 = time.monotonic()
        serve.proc.send_signal(signal.SIGTERM)
        rc = serve.proc.wait(10)
        assert rc == 0 and time.monotonic() - t0 < 2.0
        assert not any("Traceback" in line for line in serve.log)
    finally:
        serve.kill()


def test_daemon_keeps_running_through_sound_server_loss(virtual_mic, random_bundle_path):
    config = load_config(None, {"model.path": str(random_bundle_path),
                                "audio.retry_initial_s": 0.2, "audio.retry_max_s": 1.0,
                                "audio.stall_timeout_s": 1.0})
    daemon = Daemon(config)
    sub = daemon.bus.subscribe("t", queue_size=100)
    daemon.start()

    def state() -> str:
        return daemon.status()["sources"][0]["state"]

    def wait(pred, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out; status {daemon.status()}")

    try:
        wait(lambda: state() == "running", 30)
        virtual_mic.kill()
        wait(lambda: state() == "degraded", 20)
        assert daemon.serving and daemon.healthy()
        time.sleep(1.0)
        assert state() == "degraded" and daemon.healthy()
        virtual_mic.start()
        wait(lambda: state() == "running", 30)
        virtual_mic.feed(np.concatenate([silence(0.5), espeak("hello again"), silence(1.5)]))
        kinds = []
        deadline = time.monotonic() + 30
        while EventKind.SPEECH_END not in kinds and time.monotonic() < deadline:
            ev = sub.get(0.5)
            if ev is not None:
                kinds.append(ev.kind)
        assert EventKind.SPEECH_BEGIN in kinds and EventKind.SPEECH_END in kinds
    finally:
        daemon.stop()
