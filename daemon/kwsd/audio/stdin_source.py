"""Raw little-endian s16 PCM from stdin (or any binary stream): `arecord ... | kwsd serve
--stdin`. The reader thread blocks on the pipe, so the writer feels back-pressure rather than
the daemon silently losing audio."""

from __future__ import annotations

import sys
import threading
import time
from typing import BinaryIO

from kwsd.audio.chunk import SAMPLE_RATE, AudioChunk
from kwsd.audio.convert import Resampler, check_rate, pcm16_to_mono
from kwsd.audio.source import AudioSource, SourceState


class StdinSource(AudioSource):
    kind = "stdin"

    def __init__(self, source_id: str = "stdin", rate: int = SAMPLE_RATE, channels: int = 1,
                 chunk_ms: int = 50, stream: BinaryIO | None = None,
                 queue_ms: int = 4000) -> None:
        super().__init__(source_id, queue_chunks=max(2, queue_ms // max(chunk_ms, 1)))
        self.rate = check_rate(rate)
        self.channels = channels
        self.frames = max(1, self.rate * chunk_ms // 1000)
        self._stream = stream if stream is not None else sys.stdin.buffer
        self._resampler = Resampler(self.rate)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.state = SourceState.RUNNING
        self.detail = f"raw s16le {self.rate} Hz x{self.channels}"
        self._thread = threading.Thread(target=self._run, name=f"stdin-{self.source_id}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        frame_bytes = 2 * self.channels
        want = self.frames * frame_bytes
        pos = 0
        carry = b""
        while not self._stop.is_set():
            try:
                data = self._stream.read(want - len(carry)) if want > len(carry) else b""
            except (OSError, ValueError) as exc:  # EIO, EISDIR, a closed stream: input is gone
                self._end(f"cannot read the input: {getattr(exc, 'strerror', None) or exc}")
                return
            now = time.time()
            eof = not data
            data = carry + data
            usable = len(data) - len(data) % frame_bytes
            carry = data[usable:]
            if usable or eof:
                mono = pcm16_to_mono(data[:usable], self.channels)
                samples = self._resampler.process(mono, last=eof)
                if len(samples):
                    chunk = AudioChunk(samples, pos, now - len(samples) / SAMPLE_RATE)
                    pos += len(samples)
                    if not self._put_wait(chunk):
                        return
            if eof:
                self._end("end of input")
                return

