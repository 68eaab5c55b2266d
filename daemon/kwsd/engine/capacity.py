"""How many simultaneous speaking streams one process sustains in real time (`kwsd bench
--streams N`).

Each stream is a thread that feeds the daemon's own `Pipeline` 100 ms chunks on a real-time
schedule, as a Detect client or a microphone would; all pipelines share one model and, unless
`max_batch` is 1 on the CPU, one inference scheduler (the daemon's code path, without gRPC).
The VAD gate is off: every stream speaks all the time, the worst case for compute. A stream
holds real time when it never falls more than `LAG_LIMIT_S` behind its schedule. Latency of a
window = the time its posteriors exist minus the time its last sample was due (what a
detection in that window adds to the wait after the keyword's end, before the decision).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from kwsd.audio.chunk import SAMPLE_RATE, AudioChunk
from kwsd.config import config_from_dict
from kwsd.engine.pipeline import Pipeline, PipelineSettings

if TYPE_CHECKING:
    from kwsd.model.bundle import ModelBundle

CHUNK_S = 0.1
LAG_LIMIT_S = 1.0
GIVE_UP_S = 5.0     # during the warm-up


@dataclass
class _Stream:
    pipeline: Pipeline
    latencies_s: list[float] = field(default_factory=list)
    max_lag_s: float = 0.0
    error: str = ""


def _feed(stream: _Stream, samples: np.ndarray, offset: int, t0: float, seconds: float,
          warmup_s: float, stop: threading.Event) -> None:
    n = int(CHUNK_S * SAMPLE_RATE)
    chunks = int(seconds / CHUNK_S)
    pos = offset % len(samples)
    try:
        for i in range(chunks):
            due = t0 + (i + 1) * CHUNK_S        # the chunk's last sample has been captured
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            lag = time.monotonic() - due
            counted = (i + 1) * CHUNK_S > warmup_s   # the first windows build caches
            if counted:
                stream.max_lag_s = max(stream.max_lag_s, lag)
            if (counted and lag > LAG_LIMIT_S) or lag > GIVE_UP_S or stop.is_set():
                stream.max_lag_s = max(stream.max_lag_s, lag)
                return                          # behind real time: this stream did not hold
            piece = np.take(samples, np.arange(pos, pos + n), mode="wrap")
            pos = (pos + n) % len(samples)
            before = stream.pipeline.windows
            stream.pipeline.process(AudioChunk(piece, i * n, time.time()))
            done = time.monotonic()
            if counted:
                stream.latencies_s += [done - due] * (stream.pipeline.windows - before)
    except Exception as exc:  # noqa: BLE001 - reported in the result
        stream.error = f"{type(exc).__name__}: {exc}"


def measure_streams(bundle: ModelBundle, streams: int, *, seconds: float = 20.0,
                    max_batch: int = 32, max_wait_ms: float = 20.0, device: str = "cpu",
                    batch_workers: int = 2,
                    precision: str = "", samples: np.ndarray | None = None,
                    warmup_s: float = 2.0) -> dict:
    """Run `streams` real-time speaking streams for `seconds`; lag and latency count from
    `warmup_s` on (the first windows of each stream fill its caches; a stream more than
    GIVE_UP_S behind even then stops)."""
    from kwsd.engine.daemon import make_scheduler
    from kwsd.model.bench import speech_like

    config = config_from_dict({"vad": {"enabled": False},
                               "engine": {"max_batch": max_batch, "max_wait_ms": max_wait_ms,
                                          "device": device, "precision": precision,
                                          "batch_workers": batch_workers}})
    settings = PipelineSettings.from_config(config)
    scheduler = make_scheduler(config, bundle, settings)   # ConfigError for a bad device
    if samples is None:
        samples = speech_like(30.0)
    runs = [_Stream(Pipeline(bundle, f"bench{i}", settings, scheduler=scheduler))
            for i in range(streams)]
    stop = threading.Event()
    t0 = time.monotonic() + 0.2
    threads = [threading.Thread(target=_feed, daemon=True,
                                args=(s, samples, i * 3700, t0, seconds, warmup_s, stop))
               for i, s in enumerate(runs)]
    cpu0 = time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds * 3 + 60)
    stop.set()
    wall = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    lat = np.asarray([x for s in runs for x in s.latencies_s], dtype=np.float64)
    windows = sum(p.pipeline.windows for p in runs)
    out = {
        "streams": streams, "seconds": seconds, "device": device,
        "max_batch": max_batch if scheduler is not None else 1, "max_wait_ms": max_wait_ms,
        "batch_workers": batch_workers if scheduler is not None else 0,
        "precision": settings.precision_for(bundle),
        "held": all(not s.error and s.max_lag_s <= LAG_LIMIT_S for s in runs),
        "streams_held": sum(not s.error and s.max_lag_s <= LAG_LIMIT_S for s in runs),
        "windows_per_s": round(windows / wall, 1),
        "latency_p50_ms": round(float(np.percentile(lat, 50)) * 1000, 1) if len(lat) else None,
        "latency_p95_ms": round(float(np.percentile(lat, 95)) * 1000, 1) if len(lat) else None,
        "max_lag_s": round(max((s.max_lag_s for s in runs), default=0.0), 3),
        "cpu_percent": round(100 * cpu / wall, 1),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "errors": sorted({s.error for s in runs if s.error}),
    }
    if scheduler is not None:
        stats = scheduler.stats()
        scheduler.close()
        out["batch"] = {k: stats[k] for k in ("batches", "mean_batch", "max_batch_seen",
                                               "queue_wait_p50_s", "queue_wait_p95_s",
                                               "late_windows", "dropped_windows")}
    return out
