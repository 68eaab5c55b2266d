"""One inference scheduler for every stream of a daemon: ready windows from many streams, one batch.

Why. Each stream's window costs a few dozen small torch calls (conv stack on the new frames,
two transformer layers, the head); at the demo model's size most of that is per-call overhead,
not arithmetic, so 20 windows run as one [20, ...] batch cost far less than 20 runs of [1, ...].
Streams stay synchronous: a stream's thread hands its window to `run` and blocks until that
window's posteriors come back, so `Pipeline.process`, the decision and the events are as before.

What is batched and what stays per stream. A window's job (`WindowJob`) carries the samples
the conv stack must see for it (the new hop's segment with the conv cache, else the window)
and a callback that turns the new conv features into the transformer's input x0 (the stream's
conv-feature cache and positional-conv cache: per-stream state, run by the worker while the
stream waits). The worker gathers jobs for at most `max_wait_s` after the first one (less when
every recently active stream has already sent its window, or `max_batch` are waiting), then
runs the conv stack on each group of equal-length segments, each job's callback, and
`classify_windows` (transformer + head: the one seam that decides what a window costs) on each
group of equal-shape x0.

Equal to running alone. No padding anywhere (windows of one group have the same length), so
a batched row differs from the same window alone only by GEMM blocking order (float rounding;
tests/engine/test_batching.py measures it on real audio). Dynamically quantised int8 layers
pick one activation scale per input tensor, so batching would change every row's numbers: with
an int8 precision the transformer runs row by row (the conv stack and head are still batched).

Device. On "cuda" the worker keeps its own copy of the encoder and head on the GPU; the
per-stream caches stay on the CPU (one small copy per window each way).

Workers. `workers` threads (engine.batch_workers, default 2) take turns: one gathers the next
batch while another computes, so the heavy torch calls (which release the GIL) of two batches
can run on two cores, and on a machine shared with other jobs the scheduler competes for CPU
with more than one thread (measured on the 2-core build machine at load 13: one worker held
fewer streams than per-stream threads did). A worker starts when a job finds fewer running
and ends after `IDLE_EXIT_S` without one, so a scheduler that a reload replaced needs no
shutdown: it stops when its last stream stops.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from kwsd.model.precision import PRECISIONS

IDLE_EXIT_S = 5.0       # worker thread ends after this long without a job
ACTIVE_S = 1.0          # a stream that sent a window this recently is expected to send another
WAIT_HISTORY = 2048     # queue waits kept for the percentiles
# Most samples one conv-stack call takes. Batching whole 1 s windows through real-size convs
# made each window slower (measured, 512 channels: 67 ms alone, 61 ms in fours, 86 ms in
# sixteens: the first layer's output no longer fits the caches), so long inputs go in small
# groups; the 10-frame segments of the conv cache go in groups of up to 19.
CONV_BATCH_SAMPLES = 65536
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
WAIT_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class SchedulerClosed(RuntimeError):
    """The scheduler was closed (daemon stopping) before this window ran."""


def conv_features(encoder, wave: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
    """Conv stack + projection: samples [B, T] -> projected features [B, frames, H]."""
    return encoder.project(encoder.extract_conv_features(wave, reference=reference))


def classify_windows(encoder, head, x0: torch.Tensor, *, row_by_row: bool = False,
                     timings: dict[str, float] | None = None, clock=time.perf_counter
                     ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Transformer + head, the part of a window that does not depend on the stream's history:
    x0 [B, frames, H] -> (hidden states, num_states x [B, frames, H]; probabilities [B, labels]).

    This is the seam for anything that wants to skip or replace the transformer for some
    windows. `row_by_row`: run the transformer one window at a time (int8 layers, see module
    doc). `timings`: add the seconds spent to its "transformer" and "head" entries."""
    t0 = clock()
    if row_by_row and x0.shape[0] > 1:
        rows = [encoder.encoder.run_layers(x0[i:i + 1]) for i in range(x0.shape[0])]
        states = [torch.cat(parts) for parts in zip(*rows, strict=True)]
    else:
        states = encoder.encoder.run_layers(x0)
    t1 = clock()
    probs = torch.softmax(head(states), dim=-1)
    if timings is not None:
        timings["transformer"] += t1 - t0
        timings["head"] += clock() - t1
    return states, probs


@dataclass(eq=False)
class WindowJob:
    """One stream's window, handed to the scheduler. `assemble(new_features [1, n, H]) -> x0
    [1, frames, H]` runs the stream's caches (in the worker, while the stream waits)."""

    conv_input: torch.Tensor                  # [1, T] float samples
    reference: torch.Tensor | None            # [1, T'] group-norm reference, or None
    assemble: Callable[[torch.Tensor], torch.Tensor]
    client: int                               # which stream (id of its classifier)
    late_after_s: float                       # counted late when its result takes longer
    submitted: float = field(default_factory=time.monotonic)
    x0: torch.Tensor | None = None
    states: list[torch.Tensor] | None = None
    probs: np.ndarray | None = None
    error: BaseException | None = None
    done: threading.Event = field(default_factory=threading.Event)


class _Stats:
    """Counters for GetStatus and Prometheus (updated by the worker under the scheduler lock)."""

    def __init__(self) -> None:
        self.batches = 0
        self.windows = 0
        self.late = 0
        self.dropped = 0
        self.batch_hist = [0] * (len(BATCH_BUCKETS) + 1)
        self.wait_hist = [0] * (len(WAIT_BUCKETS_S) + 1)
        self.wait_sum_s = 0.0
        self.waits: deque[float] = deque(maxlen=WAIT_HISTORY)
        self.sizes: deque[int] = deque(maxlen=WAIT_HISTORY)
        self.max_batch_seen = 0

    def batch(self, size: int, waits: list[float], late: int) -> None:
        self.batches += 1
        self.windows += size
        self.late += late
        self.max_batch_seen = max(self.max_batch_seen, size)
        self.sizes.append(size)
        self.batch_hist[_bucket(size, BATCH_BUCKETS)] += 1
        for w in waits:
            self.wait_hist[_bucket(w, WAIT_BUCKETS_S)] += 1
            self.wait_sum_s += w
            self.waits.append(w)


def _bucket(value: float, bounds: tuple) -> int:
    for i, b in enumerate(bounds):
        if value <= b:
            return i
    return len(bounds)


def check_device(device: str) -> None:
    """ValueError unless torch can run on `device` ("cpu", or "cuda" when torch sees one)."""
    if device == "cpu":
        return
    if device != "cuda":
        raise ValueError(f"must be \"cpu\" or \"cuda\", got {device!r}")
    if not torch.cuda.is_available():
        raise ValueError(f"\"cuda\" asked for, but this torch ({torch.__version__}) sees no CUDA "
                         f"device (built for CUDA: {torch.version.cuda or 'no'}); use \"cpu\"")


class InferenceScheduler:
    """Batches the windows of all streams that share one encoder copy (bundle + precision)."""

    def __init__(self, encoder, head, precision: str, *, max_batch: int = 32,
                 max_wait_s: float = 0.02, device: str = "cpu", workers: int = 2,
                 name: str = "kwsd-batch") -> None:
        check_device(device)
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.precision = precision
        self.device = torch.device(device)
        self.row_by_row = PRECISIONS.get(precision, ("", ""))[1] == "int8"
        if device == "cpu":
            self.encoder, self.head = encoder, head
        else:
            if self.row_by_row:
                raise ValueError(f"precision {precision} (int8 layers) runs on the CPU only")
            self.encoder = copy.deepcopy(encoder).to(self.device).eval()
            self.head = copy.deepcopy(head).to(self.device).eval()
        self.max_batch = int(max_batch)
        self.max_wait_s = float(max_wait_s)
        self.name = name
        self._queue: deque[WindowJob] = deque()
        self._cond = threading.Condition()
        self._active: dict[int, float] = {}   # client -> last submit time
        self.workers = max(1, int(workers))
        self._running = 0                     # worker threads alive
        self._gather_lock = threading.Lock()  # one worker gathers at a time
        self._closed = False
        self._stats = _Stats()

    # --- the streams' side ----------------------------------------------------------------------
    def run(self, job: WindowJob) -> WindowJob:
        """Queue one window and block until its states and probabilities are set."""
        with self._cond:
            if self._closed:
                raise SchedulerClosed("inference scheduler closed")
            job.submitted = time.monotonic()
            self._active[job.client] = job.submitted
            self._queue.append(job)
            if self._running < self.workers:
                self._running += 1
                threading.Thread(target=self._work, name=f"{self.name}-{self._running}",
                                 daemon=True).start()
            self._cond.notify_all()
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job

    def close(self) -> None:
        """Fail what is queued (those windows are counted as dropped) and refuse new ones."""
        with self._cond:
            self._closed = True
            pending = list(self._queue)
            self._queue.clear()
            self._stats.dropped += len(pending)
            self._cond.notify_all()
        for job in pending:
            job.error = SchedulerClosed("inference scheduler closed")
            job.done.set()

    # --- figures --------------------------------------------------------------------------------
    def stats(self) -> dict:
        """Batch sizes, queue wait, late and dropped windows (GetStatus, Prometheus, bench)."""
        with self._cond:
            s = self._stats
            waits = np.asarray(s.waits, dtype=np.float64)
            sizes = np.asarray(s.sizes, dtype=np.float64)
            return {
                "device": self.device.type, "precision": self.precision,
                "max_batch": self.max_batch, "max_wait_ms": round(self.max_wait_s * 1000, 3),
                "batches": s.batches, "windows": s.windows,
                "mean_batch": round(s.windows / s.batches, 3) if s.batches else 0.0,
                "recent_mean_batch": round(float(sizes.mean()), 3) if len(sizes) else 0.0,
                "max_batch_seen": s.max_batch_seen,
                "queue_wait_p50_s": round(float(np.percentile(waits, 50)), 5) if len(waits)
                else 0.0,
                "queue_wait_p95_s": round(float(np.percentile(waits, 95)), 5) if len(waits)
                else 0.0,
                "queue_wait_sum_s": round(s.wait_sum_s, 6),
                "late_windows": s.late, "dropped_windows": s.dropped,
                "queued": len(self._queue),
                "batch_size_buckets": list(zip(BATCH_BUCKETS + (float("inf"),),
                                               s.batch_hist, strict=True)),
                "queue_wait_buckets": list(zip(WAIT_BUCKETS_S + (float("inf"),),
                                               s.wait_hist, strict=True)),
            }

    # --- the worker -----------------------------------------------------------------------------
    def _expected(self, now: float) -> int:
        """Streams likely to send a window soon: those that sent one within ACTIVE_S."""
        stale = [c for c, t in self._active.items() if now - t > ACTIVE_S]
        for c in stale:
            del self._active[c]
        return max(1, len(self._active))

    def _gather(self) -> list[WindowJob] | None:
        with self._gather_lock, self._cond:
            idle_until = time.monotonic() + IDLE_EXIT_S
            while not self._queue:
                left = idle_until - time.monotonic()
                if self._closed or left <= 0:
                    self._running -= 1
                    return None
                self._cond.wait(left)
            deadline = self._queue[0].submitted + self.max_wait_s
            while len(self._queue) < self.max_batch and not self._closed:
                now = time.monotonic()
                if now >= deadline or len(self._queue) >= self._expected(now):
                    break
                self._cond.wait(deadline - now)
            n = min(self.max_batch, len(self._queue))
            return [self._queue.popleft() for _ in range(n)]

    def _work(self) -> None:
        while True:
            batch = self._gather()
            if batch is None:
                return
            start = time.monotonic()
            try:
                with torch.inference_mode():
                    self._compute(batch)
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting streams
                for job in batch:
                    if job.states is None and job.error is None:
                        job.error = exc
            end = time.monotonic()
            failed = sum(job.error is not None for job in batch)
            late = sum(end - job.submitted > job.late_after_s for job in batch)
            with self._cond:
                self._stats.batch(len(batch), [start - job.submitted for job in batch], late)
                self._stats.dropped += failed
            for job in batch:
                job.done.set()

    def _compute(self, batch: list[WindowJob]) -> None:
        # Conv stack, one call per group of equal-length inputs; then each stream's caches.
        groups = _groups(batch, lambda j: (tuple(j.conv_input.shape), None if j.reference
                                           is None else tuple(j.reference.shape)))
        for group in (g[i:i + _conv_rows(g[0])] for g in groups
                      for i in range(0, len(g), _conv_rows(g[0]))):
            wave = self._to_device(torch.cat([j.conv_input for j in group]))
            ref = None if group[0].reference is None else \
                self._to_device(torch.cat([j.reference for j in group]))
            new = conv_features(self.encoder, wave, ref).to("cpu")
            for i, job in enumerate(group):
                try:
                    job.x0 = job.assemble(new[i:i + 1])
                except Exception as exc:  # noqa: BLE001 - this stream's state only
                    job.error = exc
        # Transformer + head, one call per group of equal-shape inputs.
        ready = [j for j in batch if j.error is None]
        for group in _groups(ready, lambda j: tuple(j.x0.shape)):
            x0 = self._to_device(torch.cat([j.x0 for j in group]))
            states, probs = classify_windows(self.encoder, self.head, x0,
                                             row_by_row=self.row_by_row)
            states = [s.to("cpu") for s in states]
            probs = probs.to("cpu").numpy()
            for i, job in enumerate(group):
                job.states = [s[i:i + 1] for s in states]
                job.probs = probs[i].copy()

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.device.type == "cpu" else x.to(self.device, non_blocking=False)


def _conv_rows(job: WindowJob) -> int:
    samples = job.conv_input.shape[-1] + (0 if job.reference is None else
                                          job.reference.shape[-1])
    return max(1, CONV_BATCH_SAMPLES // max(1, samples))


def _groups(jobs: list[WindowJob], key) -> list[list[WindowJob]]:
    out: dict = {}
    for job in jobs:
        out.setdefault(key(job), []).append(job)
    return list(out.values())
