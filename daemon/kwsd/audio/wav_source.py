"""A WAV file as an audio source: paced in real time (a stand-in microphone) or as fast as the
consumer takes it (offline runs). Any rate and width: `read_audio_16k` converts once at open."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from kwsd.audio.audiofile import AudioFileError, read_audio_16k
from kwsd.audio.chunk import SAMPLE_RATE, AudioChunk
from kwsd.audio.source import AudioSource, SourceError, SourceState


class WavSource(AudioSource):
    kind = "wav"

    def __init__(self, path: str | Path, source_id: str = "wav", realtime: bool = True,
                 chunk_ms: int = 50, loop: bool = False, queue_ms: int = 4000) -> None:
        self.chunk = max(1, SAMPLE_RATE * chunk_ms // 1000)
        super().__init__(source_id, queue_chunks=max(2, queue_ms // max(chunk_ms, 1)))
        self.path = Path(path)
        try:
            self.samples = read_audio_16k(self.path)
        except AudioFileError as exc:
            raise SourceError(str(exc)) from None
        self.realtime = realtime
        self.live = realtime
        self.loop = loop
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.state = SourceState.RUNNING
        self.detail = f"{self.path.name} ({'real time' if self.realtime else 'fast'})"
        self._thread = threading.Thread(target=self._run, name=f"wav-{self.source_id}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        super().stop()
        if self._thread is not None:
            self._thread.join(timeout=1.0)

    def _run(self) -> None:
        t_mono, t_wall = time.monotonic(), time.time()
        pos = 0  # stream sample counter (keeps counting across loops)
        while not self._stop.is_set():
            for i in range(0, len(self.samples), self.chunk):
                if self._stop.is_set():
                    return
                block = np.ascontiguousarray(self.samples[i:i + self.chunk])
                chunk = AudioChunk(block, pos, t_wall + pos / SAMPLE_RATE)
                pos += len(block)
                if self.realtime:
                    # A block exists once its last sample has been "captured".
                    delay = t_mono + pos / SAMPLE_RATE - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        return
                    self._offer(chunk)
                elif not self._put_wait(chunk):
                    return
            if not self.loop:
                break
        self._end("end of file")
