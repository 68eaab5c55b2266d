"""What every audio source has in common: a state a person can read, counters, and `read`.

A source produces AudioChunks on its own thread (or a capture callback) into a bounded queue; the
daemon's inference thread calls `read(timeout)`. The queue bound is where a slow consumer shows
up: a live source drops the block and counts an overflow, a file source simply waits.
"""

from __future__ import annotations

import queue
import threading
from enum import StrEnum

from kwsd.audio.chunk import SAMPLE_RATE, AudioChunk


class SourceState(StrEnum):
    STARTING = "starting"
    RUNNING = "running"
    DEGRADED = "degraded"       # lost device, being retried
    STOPPED = "stopped"         # stopped, or a file/stdin that reached its end


class SourceError(RuntimeError):
    """A source that cannot be set up at all (no such file, no such device index)."""


class AudioSource:
    """Base class: subclasses fill `self._queue` with AudioChunks (or None at end of stream)."""

    kind = "source"
    live = False        # audio arrives in real time (the engine may batch it while idle)

    def __init__(self, source_id: str, queue_chunks: int = 64) -> None:
        self.source_id = source_id
        self.state = SourceState.STARTING
        self.detail = ""
        self.overflows = 0              # blocks lost (device overflow or full queue)
        self.samples_out = 0
        self._queue: queue.Queue[AudioChunk | None] = queue.Queue(maxsize=max(2, queue_chunks))
        self._stop = threading.Event()
        self._ended = False

    # --- consumer side -------------------------------------------------------------------------
    def read(self, timeout: float = 0.5) -> AudioChunk | None:
        """Next chunk, or None after `timeout` or at the end of the stream (see `finished`)."""
        if self._ended:
            return None
        try:
            chunk = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if chunk is None:
            self._ended = True
            return None
        self.samples_out += len(chunk.samples)
        return chunk

    def pending(self) -> int:
        """Chunks waiting to be read."""
        return self._queue.qsize()

    @property
    def finished(self) -> bool:
        """True once the end of the stream has been read: no chunk will ever come again."""
        return self._ended

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self._stop.set()
        self.state = SourceState.STOPPED

    def info(self) -> dict:
        return {"id": self.source_id, "kind": self.kind, "state": self.state.value,
                "detail": self.detail, "overflows": self.overflows,
                "audio_s": round(self.samples_out / SAMPLE_RATE, 3)}

    # --- producer side -------------------------------------------------------------------------
    def _offer(self, chunk: AudioChunk) -> bool:
        """Live sources: never wait; a full queue loses this block (counted)."""
        try:
            self._queue.put_nowait(chunk)
            return True
        except queue.Full:
            self.overflows += 1
            return False

    def _put_wait(self, item: AudioChunk | None) -> bool:
        """File-like sources: wait for room (back-pressure) unless stopping."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _end(self, detail: str) -> None:
        self.detail = detail
        self.state = SourceState.STOPPED
        self._put_wait(None)
