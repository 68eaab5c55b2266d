"""The microphone source through a real sound server (PulseAudio with a FIFO-fed source)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from kwsd.audio.microphone import MicrophoneSource
from kwsd.audio.source import SourceState

REPO = Path(__file__).resolve().parents[2]


def _marker(seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(-20000, 20000, int(seconds * 16000)).astype(np.int16)


def _collect(src: MicrophoneSource, seconds: float) -> list:
    chunks, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        chunk = src.read(0.2)
        if chunk is not None:
            chunks.append(chunk)
    return chunks


def _wait_state(src: MicrophoneSource, state: SourceState, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        src.read(0.05)                       # keep consuming, as the daemon does
        if src.state == state:
            return
    raise AssertionError(f"source {src.state} ({src.detail}), expected {state}")


def _find_exact(chunks: list, marker: np.ndarray) -> int:
    """Stream sample where `marker` starts, checking every sample of it is exact."""
    stream = np.concatenate([c.samples for c in chunks])
    first = chunks[0].start_sample
    for a, b in zip(chunks, chunks[1:], strict=False):   # contiguous stream offsets
        assert b.start_sample == a.start_sample + len(a.samples)
    nz = np.flatnonzero(stream)
    assert len(nz), "no audio arrived"
    i = int(nz[0])
    assert np.array_equal(stream[i:i + len(marker)], marker), "samples differ from the written"
    return first + i


def test_default_input_delivers_exactly_the_written_samples(virtual_mic):
    src = MicrophoneSource("", "mic", chunk_ms=50)
    src.start()
    try:
        _wait_state(src, SourceState.RUNNING, 20)
        assert "native" in src.detail               # 16 kHz mono opened directly
        _collect(src, 0.3)
        marker = _marker(2.0)
        virtual_mic.feed(marker)
        chunks = _collect(src, 3.5)
        _find_exact(chunks, marker)
        assert src.overflows == 0
        assert all(c.samples.dtype == np.int16 for c in chunks)
    finally:
        src.stop()
    assert src.state == SourceState.STOPPED


def test_device_loss_degrades_then_recovers(virtual_mic):
    src = MicrophoneSource("", "mic", chunk_ms=50, retry_initial_s=0.2, retry_max_s=1.0,
                           stall_timeout_s=1.0)
    src.start()
    try:
        _wait_state(src, SourceState.RUNNING, 20)
        _collect(src, 0.5)
        virtual_mic.kill()                          # the sound server dies
        _wait_state(src, SourceState.DEGRADED, 20)
        assert "lost" in src.detail or "cannot open" in src.detail
        t0 = time.monotonic()
        assert src.read(0.3) is None or True        # reads return; nothing blocks
        assert time.monotonic() - t0 < 5
        virtual_mic.start()                         # and comes back
        _wait_state(src, SourceState.RUNNING, 30)
        assert src.losses >= 1 and src.opens >= 2
        _collect(src, 0.3)
        marker = _marker(1.0, seed=1)
        virtual_mic.feed(marker)
        chunks = _collect(src, 2.5)
        _find_exact(chunks, marker)
    finally:
        src.stop()


def test_devices_command_lists_the_virtual_input(virtual_mic):
    env = dict(os.environ, PYTHONPATH=str(REPO / "daemon"))
    out = subprocess.run([sys.executable, "-m", "kwsd", "devices"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "default" in out.stdout and "*" in out.stdout
    assert "ALSA lib" not in out.stderr and "jack" not in out.stderr.lower()
