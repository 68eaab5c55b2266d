"""A virtual microphone for tests: a private PulseAudio daemon whose default source is a FIFO.

Whatever is written into the FIFO comes out of PyAudio's default input device, bit-exact (the
recipe in ../shared/ENVIRONMENT-NOTES.md). Each VirtualMic has its own runtime directory and
socket, so several test sessions on one machine do not see each other; processes that should
use it need `env()` (PULSE_SERVER etc.) in their environment, or `activate()` for this process.

A feeder thread keeps writing: queued audio paced in real time (or unpaced when asked), silence
otherwise, because a PyAudio read spins at 100 % CPU when the source sends nothing.

    mic = VirtualMic(tmp_path); mic.start(); mic.activate()
    mic.feed(samples)            # 16 kHz mono int16, written in real time after what is queued
    mic.kill(); mic.start()      # device loss and return
    mic.stop()
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

RATE = 16_000
BLOCK = 320                      # 20 ms per write


class VirtualMicError(RuntimeError):
    pass


def available() -> str | None:
    """None when PulseAudio can be used here, else why not (for pytest.skip/fail)."""
    for exe in ("pulseaudio", "pactl"):
        if shutil.which(exe) is None:
            return f"{exe} is not installed (scripts/install.sh installs pulseaudio)"
    return None


class VirtualMic:
    def __init__(self, workdir: str | Path, rate: int = RATE) -> None:
        self.dir = Path(workdir)
        self.rate = rate
        self.runtime = self.dir / "pulse-run"
        self.fifo = self.dir / "virtmic.fifo"
        self.script = self.dir / "virtmic.pa"
        self.log = self.dir / "pulseaudio.log"
        self.pid: int | None = None
        self._queue: collections.deque[np.ndarray] = collections.deque()
        self._lock = threading.Lock()
        self._feeder: threading.Thread | None = None
        self._stop_feed = threading.Event()
        self.paced = True
        self.written = 0                # samples written into the FIFO since start()
        # (first sample index, wall time) of recent writes: when a sample "was spoken".
        self.write_log: collections.deque[tuple[int, float]] = collections.deque(maxlen=200_000)

    # --- environment -------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """Variables a client process needs to reach this server (and only this one)."""
        return {"PULSE_SERVER": f"unix:{self.runtime / 'native'}",
                "PULSE_RUNTIME_PATH": str(self.runtime),
                "PULSE_STATE_PATH": str(self.dir / "pulse-state"),
                "PULSE_COOKIE": str(self.dir / "pulse-cookie")}

    def activate(self) -> None:
        """Point this process's PulseAudio clients (PyAudio via ALSA) at this server."""
        os.environ.update(self.env())

    # --- server ------------------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> None:
        why = available()
        if why:
            raise VirtualMicError(why)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.runtime.mkdir(mode=0o700, exist_ok=True)
        self.fifo.unlink(missing_ok=True)           # module-pipe-source makes its own FIFO
        self.script.write_text(
            f"load-module module-native-protocol-unix auth-anonymous=1 "
            f"socket={self.runtime / 'native'}\n"
            f"load-module module-null-sink sink_name=nullsink rate={self.rate} channels=1\n"
            "set-default-sink nullsink\n"
            f"load-module module-pipe-source source_name=virtmic file={self.fifo} "
            f"format=s16le rate={self.rate} channels=1\n"
            "set-default-source virtmic\n")
        env = dict(os.environ, **self.env())
        env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        with open(self.log, "ab") as log:
            proc = subprocess.run(
                ["pulseaudio", "--daemonize=yes", "--exit-idle-time=-1", "-n", "-F",
                 str(self.script), "--use-pid-file=yes", f"--log-target=file:{self.log}",
                 "--disallow-exit", "--disable-shm=yes"],
                env=env, stdout=log, stderr=log, timeout=timeout)
        if proc.returncode != 0:
            raise VirtualMicError(f"pulseaudio failed to start (rc {proc.returncode}); "
                                  f"see {self.log}")
        pid_file = self.runtime / "pid"
        self.pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if subprocess.run(["pactl", "info"], env=env, capture_output=True,
                              timeout=5).returncode == 0 and self.fifo.exists():
                break
            time.sleep(0.05)
        else:
            self.stop()
            raise VirtualMicError(f"pulseaudio did not answer within {timeout} s; "
                                  f"see {self.log}")
        self._start_feeder()

    def kill(self) -> None:
        """Device loss: SIGKILL the server (no goodbye to its clients)."""
        self._stop_feeder()
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._wait_gone(self.pid)
        self.pid = None
        for leftover in (self.runtime / "native", self.runtime / "pid", self.fifo):
            leftover.unlink(missing_ok=True)

    def stop(self) -> None:
        self._stop_feeder()
        if self.pid is not None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if not self._wait_gone(self.pid, 5.0):
                os.kill(self.pid, signal.SIGKILL)
                self._wait_gone(self.pid)
        self.pid = None

    @staticmethod
    def _wait_gone(pid: int, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.02)
        return False

    # --- audio -------------------------------------------------------------------------------
    def feed(self, samples: np.ndarray) -> int:
        """Queue 16 kHz int16 audio; returns the FIFO sample index where it will start."""
        samples = np.ascontiguousarray(samples, dtype="<i2")
        with self._lock:
            start = self.written + sum(len(q) for q in self._queue)
            self._queue.append(samples)
        return start

    def pending(self) -> int:
        with self._lock:
            return sum(len(q) for q in self._queue)

    def wait_drained(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pending() == 0:
                return True
            time.sleep(0.02)
        return False

    def written_at(self, index: int) -> float | None:
        """Wall time at which FIFO sample `index` was written (None if not yet / forgotten)."""
        log = self.write_log
        if not log or index < log[0][0] or index >= self.written:
            return None
        lo, hi = 0, len(log) - 1
        while lo < hi:                      # last write whose first sample <= index
            mid = (lo + hi + 1) // 2
            if log[mid][0] <= index:
                lo = mid
            else:
                hi = mid - 1
        return log[lo][1]

    def _start_feeder(self) -> None:
        self._stop_feed.clear()
        self._feeder = threading.Thread(target=self._feed_loop, name="virtmic-feeder",
                                        daemon=True)
        self._feeder.start()

    def _stop_feeder(self) -> None:
        self._stop_feed.set()
        if self._feeder is not None:
            self._feeder.join(3)
            self._feeder = None

    def _next_block(self) -> np.ndarray:
        with self._lock:
            if not self._queue:
                return np.zeros(BLOCK, dtype="<i2")
            head = self._queue[0]
            block, rest = head[:BLOCK], head[BLOCK:]
            if len(rest):
                self._queue[0] = rest
            else:
                self._queue.popleft()
            return block

    def _feed_loop(self) -> None:
        try:
            fd = os.open(self.fifo, os.O_WRONLY)
        except OSError:
            return
        t0 = time.monotonic()
        sent = 0
        try:
            while not self._stop_feed.is_set():
                block = self._next_block()
                try:
                    os.write(fd, block.tobytes())
                except (BrokenPipeError, OSError):
                    return
                self.write_log.append((self.written, time.time()))
                self.written += len(block)
                sent += len(block)
                if self.paced:
                    delay = t0 + sent / self.rate - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
        finally:
            os.close(fd)
