"""Load on a running daemon: subscribers, one subscriber that never reads, real-time Detect
streams (with per-detection latency), optionally one client that sends as fast as it can, and
the daemon process's CPU and RSS sampled meanwhile. No pytest here: scripts/load-test.py and
tests/reliability/test_load.py both use it.

Latency of a detection = the time it reached the client minus the time the client sent the
audio chunk holding the keyword's end (`end_sample`): what a user waits after saying it.
Real time is held by a stream when its sender never fell more than `LAG_LIMIT_S` behind its
real-time schedule (HTTP/2 flow control holds back a sender the daemon cannot keep up with) and
its summary came back within `LAG_LIMIT_S` of the last chunk.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

import grpc
import numpy as np
from kwsd.api.v1 import kwsd_pb2 as pb
from kwsd.api.v1 import kwsd_pb2_grpc as pb_grpc

RATE = 16_000
CHUNK_S = 0.1
LAG_LIMIT_S = 1.0
NON_READER_OPTIONS = [("grpc.http2.bdp_probe", 0), ("grpc.http2.lookahead_bytes", 1024)]


def proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@dataclass
class StreamStats:
    label: str
    sent_s: float = 0.0
    max_lag_s: float = 0.0
    tail_s: float = float("nan")        # last chunk sent -> summary received
    latencies_s: list[float] = field(default_factory=list)
    detections: int = 0
    rtf: float = float("nan")
    error: str = ""

    @property
    def held(self) -> bool:
        return not self.error and self.max_lag_s < LAG_LIMIT_S and self.tail_s < LAG_LIMIT_S


class RealtimeStream(threading.Thread):
    """One Detect stream sending `samples` (looped) in real time for `duration_s`."""

    def __init__(self, channel, label: str, samples: np.ndarray, duration_s: float,
                 offset_s: float = 0.0, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        """`metadata` goes with the call (a token, for a daemon or balancer on TCP)."""
        super().__init__(name=f"load-{label}", daemon=True)
        self.stub = pb_grpc.KwsdStub(channel)
        self.metadata = metadata
        self.stats = StreamStats(label)
        n = int(CHUNK_S * RATE)
        start = int(offset_s * RATE) % len(samples)
        looped = np.concatenate([samples[start:], samples] * (int(duration_s * RATE)
                                                              // len(samples) + 2))
        total = int(duration_s * RATE) // n * n
        self.chunks = [looped[i:i + n].astype("<i2").tobytes() for i in range(0, total, n)]
        self.sent_at: list[float] = []
        self.detections: list[tuple] = []  # (keyword, start, end, confidence to 6 places)

    def _requests(self):
        yield pb.DetectRequest(config=pb.DetectConfig(sample_rate_hz=RATE, encoding=pb.LINEAR16,
                                                      channels=1, label=self.stats.label))
        t0 = time.monotonic()
        for i, chunk in enumerate(self.chunks):
            due = t0 + i * CHUNK_S
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = time.monotonic()
            self.stats.max_lag_s = max(self.stats.max_lag_s, now - due)
            self.sent_at.append(now)
            yield pb.DetectRequest(audio=chunk)

    def run(self) -> None:
        n = int(CHUNK_S * RATE)
        try:
            for r in self.stub.Detect(self._requests(), timeout=3600, metadata=self.metadata):
                now = time.monotonic()
                if r.HasField("summary"):
                    self.stats.tail_s = now - self.sent_at[-1]
                    self.stats.rtf = r.summary.real_time_factor
                    self.stats.sent_s = r.summary.samples_processed / RATE
                else:
                    self.stats.detections += 1
                    d = r.detection
                    self.detections.append((d.keyword, d.start_sample, d.end_sample,
                                            round(d.confidence, 6)))
                    idx = min(max(0, (r.detection.end_sample - 1) // n), len(self.sent_at) - 1)
                    self.stats.latencies_s.append(now - self.sent_at[idx])
        except grpc.RpcError as exc:
            self.stats.error = f"{exc.code().name}: {exc.details()}"


class FastStream(threading.Thread):
    """A Detect client that sends maximum-size chunks as fast as gRPC lets it."""

    def __init__(self, channel, chunk_bytes: int) -> None:
        """Ended by `end()`: it cancels (waiting for the daemon to work through everything
        sent would measure the daemon's speed, not its limits)."""
        super().__init__(name="load-fast", daemon=True)
        self.call = None
        self.stub = pb_grpc.KwsdStub(channel)
        self.chunk = (np.random.default_rng(1).standard_normal(chunk_bytes // 2) * 3000) \
            .astype("<i2").tobytes()
        self.sent_bytes = 0
        self.processed_samples = 0
        self.stop = threading.Event()
        self.error = ""

    def end(self, timeout: float = 60.0) -> None:
        self.stop.set()
        if self.call is not None:
            self.call.cancel()
        self.join(timeout)

    def _requests(self):
        yield pb.DetectRequest(config=pb.DetectConfig(sample_rate_hz=RATE, encoding=pb.LINEAR16,
                                                      channels=1, label="fast"))
        while not self.stop.is_set():
            yield pb.DetectRequest(audio=self.chunk)
            self.sent_bytes += len(self.chunk)

    def run(self) -> None:
        self.call = self.stub.Detect(self._requests(), timeout=3600)
        try:
            for r in self.call:
                if r.HasField("summary"):
                    self.processed_samples = r.summary.samples_processed
        except grpc.RpcError as exc:
            if not (self.stop.is_set() and exc.code() == grpc.StatusCode.CANCELLED):
                self.error = f"{exc.code().name}: {exc.details()}"


class Subscriber(threading.Thread):
    def __init__(self, channel, name: str) -> None:
        super().__init__(name=f"sub-{name}", daemon=True)
        self.call = pb_grpc.KwsdStub(channel).Subscribe(
            pb.SubscribeRequest(client_name=name, include_speech_activity=True))
        self.events: list[tuple] = []
        self.lost = 0
        self.error = ""

    def run(self) -> None:
        try:
            for e in self.call:
                self.events.append((e.sequence, e.kind, e.keyword, e.start_sample,
                                    e.end_sample, round(e.confidence, 6)))
                self.lost = max(self.lost, e.events_lost)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                self.error = f"{exc.code().name}: {exc.details()}"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run_load(address: str, samples: np.ndarray, *, streams: int, subscribers: int,
             duration_s: float, daemon_pid: int, non_reader: bool = True,
             fast_chunk_bytes: int = 0) -> dict:
    """Everything at once for `duration_s`; returns the figures (see module doc)."""
    channels = [grpc.insecure_channel(address) for _ in range(max(1, subscribers // 50 + 1))]
    stream_channel = grpc.insecure_channel(address)
    for ch in channels + [stream_channel]:
        grpc.channel_ready_future(ch).result(timeout=300)
    subs = [Subscriber(channels[i % len(channels)], f"load{i}") for i in range(subscribers)]
    for s in subs:
        s.call.initial_metadata()
        s.start()
    lazy_channel = lazy = None
    if non_reader:
        lazy_channel = grpc.insecure_channel(address, options=NON_READER_OPTIONS)
        lazy = pb_grpc.KwsdStub(lazy_channel).Subscribe(pb.SubscribeRequest(
            client_name="never-reads", include_speech_activity=True))
        lazy.initial_metadata()
    fast = None
    fast_channel = None
    if fast_chunk_bytes:
        fast_channel = grpc.insecure_channel(address)
        fast = FastStream(fast_channel, fast_chunk_bytes)
    rt = [RealtimeStream(stream_channel, f"rt{i}", samples, duration_s,
                         offset_s=i * 3.7) for i in range(streams)]
    rss0 = proc_rss_mb(daemon_pid)
    cpu0, t0 = proc_cpu_s(daemon_pid), time.monotonic()
    if fast:
        fast.start()
    for s in rt:
        s.start()
    rss_max = rss0
    while any(s.is_alive() for s in rt):
        time.sleep(0.5)
        rss_max = max(rss_max, proc_rss_mb(daemon_pid))
        if time.monotonic() - t0 > duration_s * 3 + 60:
            break
    wall = time.monotonic() - t0
    cpu = proc_cpu_s(daemon_pid) - cpu0
    rss_end = proc_rss_mb(daemon_pid)
    status = pb_grpc.KwsdStub(stream_channel).GetStatus(pb.GetStatusRequest(), timeout=30)
    if fast:
        fast.end()
    for s in subs:
        s.call.cancel()
    if lazy is not None:
        lazy.cancel()
    for s in subs:
        s.join(10)
    for ch in channels + [stream_channel, lazy_channel, fast_channel]:
        if ch is not None:
            ch.close()
    lat = [x for s in rt for x in s.stats.latencies_s]
    lost = {s.name: s.events_lost for s in status.subscribers}
    return {
        "streams": streams, "subscribers": subscribers, "duration_s": duration_s,
        "held": all(s.stats.held for s in rt), "wall_s": round(wall, 2),
        "daemon_cpu_percent": round(100 * cpu / wall, 1),
        "latency_p50_s": round(percentile(lat, 50), 3),
        "latency_p95_s": round(percentile(lat, 95), 3), "detections": len(lat),
        "max_lag_s": round(max((s.stats.max_lag_s for s in rt), default=0.0), 3),
        "max_tail_s": round(max((s.stats.tail_s for s in rt), default=0.0), 3),
        "stream_rtf": [round(s.stats.rtf, 3) for s in rt],
        "stream_errors": [s.stats.error for s in rt if s.stats.error],
        "rss_start_mb": round(rss0, 1), "rss_max_mb": round(rss_max, 1),
        "rss_end_mb": round(rss_end, 1),
        "subscriber_events": sorted({len(s.events) for s in subs}),
        "subscriber_errors": [s.error for s in subs if s.error],
        "subscriber_lost": sum(s.lost for s in subs),
        "non_reader_lost": lost.get("grpc:never-reads", 0),
        "source_overflows": status.overflows,
        "batch_recent_mean": round(status.inference.recent_mean_batch_size, 2),
        "batch_max": status.inference.max_batch_seen,
        "queue_wait_p95_ms": round(status.inference.queue_wait_p95_ms, 1),
        "late_windows": status.inference.late_windows,
        "fast_sent_mb": round(fast.sent_bytes / 2**20, 1) if fast else 0.0,
        "fast_processed_s": round(fast.processed_samples / RATE, 1) if fast else 0.0,
        "fast_error": fast.error if fast else "",
        "_subs": subs, "_streams": rt,
    }
