"""Real daemons with real gRPC servers for the reliability tests, and the reference every
stream's events are compared with: the same Pipeline run offline on the same samples."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import pytest
from kwsd.api.v1 import kwsd_pb2 as pb
from kwsd.api.v1 import kwsd_pb2_grpc as pb_grpc
from running_daemon import KEYWORDS, LOW_THRESHOLD

BATCH_TOLERANCE = 2e-5  # batched vs alone (1e-5) plus rounding to 6 decimals


def make_config(bundle: Path, sock: Path, wav: Path | None = None, *, realtime: bool = True,
                loop: bool = True, api: dict | None = None, engine: dict | None = None,
                threshold: float | None = LOW_THRESHOLD, audio: dict | None = None):
    from kwsd.config import config_from_dict

    data: dict = {
        "model": {"path": str(bundle)},
        "engine": {"warmup": False, "torch_threads": 1, **(engine or {})},
        "api": {"socket": str(sock), **(api or {})},
    }
    if audio is not None:
        data["audio"] = audio
    elif wav is not None:
        data["audio"] = {"source": "wav", "wav": str(wav), "realtime": realtime, "loop": loop,
                         "source_id": "file"}
    if threshold is not None:
        data["decision"] = {"thresholds": {k: threshold for k in KEYWORDS}}
    return config_from_dict(data)


def reference_detections(bundle_path: Path, samples: np.ndarray, config) -> list[tuple]:
    """(keyword, start, end, confidence) the offline pipeline finds in the samples."""
    from kwsd.engine.pipeline import Pipeline, PipelineSettings
    from kwsd.events import EventKind
    from kwsd.model.bundle import load_bundle

    events = Pipeline(load_bundle(bundle_path), "reference",
                      PipelineSettings.from_config(config)).run(samples)
    # The daemon runs the windows of concurrent streams as one batch (engine.max_batch): the
    # same numbers up to float summation order (tests/engine/test_batching.py: <= 1e-5), so the
    # confidence is compared within that; keyword and samples must be equal.
    return [(e.keyword, e.start_sample, e.end_sample,
             pytest.approx(round(float(e.confidence), 6), abs=BATCH_TOLERANCE))
            for e in events if e.kind == EventKind.DETECTION]


def detection_key(event: pb.Event) -> tuple:
    return (event.keyword, event.start_sample, event.end_sample, round(event.confidence, 6))


def detect_config(rate: int = 16000, channels: int = 1, **kw) -> pb.DetectRequest:
    return pb.DetectRequest(config=pb.DetectConfig(sample_rate_hz=rate, encoding=pb.LINEAR16,
                                                   channels=channels, **kw))


@dataclass
class Witness:
    """A well-behaved Detect stream that runs while other things happen to the daemon: it sends
    its audio in real-time-ish chunks and holds its last chunk back until `release()`, so it
    spans the whole disturbance. Its detections must equal the offline reference."""

    address: str
    samples: np.ndarray
    chunk: int = 1600
    pace_s: float = 0.02
    detections: list = field(default_factory=list)
    summary: pb.DetectSummary | None = None
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self._release = threading.Event()
        self.started = threading.Event()
        self._thread = threading.Thread(target=self._run, name="witness", daemon=True)

    def start(self) -> Witness:
        self._thread.start()
        if not self.started.wait(60):
            raise AssertionError(f"witness stream did not start: {self.error}")
        return self

    def release(self) -> None:
        self._release.set()

    def join(self, timeout: float = 300) -> None:
        self._release.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "witness stream did not finish"
        if self.error is not None:
            raise self.error

    def _requests(self):
        yield detect_config(label="witness")
        data = self.samples.astype("<i2")
        chunks = [data[i:i + self.chunk] for i in range(0, len(data), self.chunk)]
        for c in chunks[:-1]:
            yield pb.DetectRequest(audio=c.tobytes())
            self._release.wait(self.pace_s)
        self._release.wait(600)
        yield pb.DetectRequest(audio=chunks[-1].tobytes())

    def _run(self) -> None:
        try:
            with grpc.insecure_channel(self.address) as channel:
                call = pb_grpc.KwsdStub(channel).Detect(self._requests(), timeout=900)
                call.initial_metadata()
                self.started.set()
                for response in call:
                    if response.HasField("summary"):
                        self.summary = response.summary
                    else:
                        self.detections.append(detection_key(response.detection))
        except BaseException as exc:  # reported by join()
            self.error = exc
            self.started.set()


class ServeProcess:
    """`kwsd serve` with its gRPC API as a subprocess; stderr (the log) collected by line."""

    def __init__(self, *args: str, env: dict | None = None, cwd: Path | None = None) -> None:
        import os
        import subprocess
        import sys

        from .conftest import REPO

        full_env = dict(os.environ, PYTHONPATH=str(REPO / "daemon"), **(env or {}))
        self.proc = subprocess.Popen([sys.executable, "-m", "kwsd", "serve", *args],
                                     env=full_env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, text=True, cwd=cwd)
        self.log: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.log.append(line.rstrip("\n"))

    def wait_log(self, needle: str, timeout: float = 120.0, after: int = 0) -> str:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.log[after:]:
                if needle in line:
                    return line
            if self.proc.poll() is not None:
                time.sleep(0.2)
                break
            time.sleep(0.05)
        found = [line for line in self.log[after:] if needle in line]
        if found:
            return found[0]
        raise AssertionError(f"no {needle!r} in the log (rc {self.proc.poll()}): "
                             f"{self.log[-30:]}")

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
