"""`kwsd serve` as a subprocess for end-to-end tests, its JSON events and log collected."""

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class Serve:
    """`kwsd serve --print --json` as a subprocess, its output collected line by line."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO / "daemon"))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kwsd", "serve", "--print", "--json", "--print-speech",
             "--no-api", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        self.events: list[dict] = []
        self.log: list[str] = []
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read_out(self) -> None:
        for line in self.proc.stdout:
            self.events.append(json.loads(line))

    def _read_err(self) -> None:
        for line in self.proc.stderr:
            self.log.append(line.rstrip())

    def wait_log(self, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(needle in line for line in self.log):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"no {needle!r} in the log: {self.log[-20:]}")

    def wait_events(self, kind: str, count: int, timeout: float) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = [e for e in self.events if e["kind"] == kind]
            if len(got) >= count:
                return got
            time.sleep(0.05)
        raise AssertionError(f"{count} {kind} events expected; got {self.events}; "
                             f"log: {self.log[-10:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
