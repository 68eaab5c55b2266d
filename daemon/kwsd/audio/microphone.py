"""The microphone through PyAudio, with a supervisor that survives losing the device.

The capture callback runs on PortAudio's thread: it only appends the block PyAudio already
allocated to a bounded deque (no conversion, no locks held for long), and counts an overflow
when the deque is full or PortAudio reports one. Conversion (downmix, resampling to 16 kHz)
happens in `read`, on the consumer's thread. A supervisor thread opens the device, watches that
blocks keep coming, and on an error or a stall closes everything and retries with backoff, the
source reporting DEGRADED meanwhile; the daemon keeps running.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Any

import numpy as np

from kwsd.audio.chunk import SAMPLE_RATE, AudioChunk
from kwsd.audio.convert import Resampler, pcm16_to_mono
from kwsd.audio.devices import DeviceError, find_input_device, open_pyaudio
from kwsd.audio.source import AudioSource, SourceState

log = logging.getLogger(__name__)


class MicrophoneSource(AudioSource):
    kind = "microphone"
    live = True

    def __init__(self, device: str = "", source_id: str = "microphone", chunk_ms: int = 50,
                 queue_ms: int = 4000, retry_initial_s: float = 0.5, retry_max_s: float = 10.0,
                 stall_timeout_s: float = 2.0) -> None:
        super().__init__(source_id)
        self.device_spec = device
        self.chunk_ms = chunk_ms
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.stall_timeout_s = stall_timeout_s
        self._max_blocks = max(2, queue_ms // max(chunk_ms, 1))
        # (bytes, device frame position, rate, channels, capture wall time): appended by the
        # callback, popped by read. deque.append/popleft are atomic under the GIL.
        self._blocks: collections.deque[tuple[bytes, int, int, int, float]] = \
            collections.deque()
        self._wakeup = threading.Event()
        self._pa: Any = None
        self._stream: Any = None
        self._fmt: tuple[int, int] = (SAMPLE_RATE, 1)
        self._frame_pos = 0                   # device frames delivered by the current stream
        self._last_block = 0.0                # monotonic time of the last callback
        self._generation = 0                  # bumps on every (re)open
        self._thread: threading.Thread | None = None
        # consumer state
        self._resampler: Resampler | None = None
        self._consumer_key: tuple[int, int, int] | None = None
        self._expect_pos = 0
        self._out_pos = 0                     # next 16 kHz stream sample
        self._out_time: float | None = None   # wall time matching _out_pos
        self.opens = 0
        self.losses = 0
        self._delivered = False
        self._device_detail = ""

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self.detail = "opening input device"
        self._thread = threading.Thread(target=self._supervise, name=f"mic-{self.source_id}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout=1.5)
        self._close()
        self.state = SourceState.STOPPED
        self.detail = "stopped"

    # --- capture callback (PortAudio's thread) -------------------------------------------------
    def _callback(self, in_data: bytes, frame_count: int, time_info: Any,
                  status: int) -> tuple[None, int]:
        now = time.time()
        self._last_block = time.monotonic()
        if status & 0x2:                      # paInputOverflow
            self.overflows += 1
        rate, channels = self._fmt
        if len(self._blocks) >= self._max_blocks:
            self.overflows += 1               # consumer too slow: this block is lost
        else:
            self._blocks.append((in_data, self._frame_pos, rate, channels,
                                 now - frame_count / rate))
            self._wakeup.set()
        self._frame_pos += frame_count
        return (None, 0)                      # paContinue

    # --- consumer ------------------------------------------------------------------------------
    def pending(self) -> int:
        return len(self._blocks)

    def read(self, timeout: float = 0.5) -> AudioChunk | None:
        if not self._blocks:
            self._wakeup.clear()
            if not self._blocks and not self._wakeup.wait(timeout):
                return None
        try:
            data, pos, rate, channels, t_cap = self._blocks.popleft()
        except IndexError:
            return None
        key = (self._generation, rate, channels)
        if key != self._consumer_key or pos != self._expect_pos:
            # New stream or lost blocks: restart the resampler; the stream clock jumps by the
            # wall time that passed, so offsets stay comparable with the clock.
            self._consumer_key = key
            self._resampler = Resampler(rate)
            if self._out_time is not None:
                self._out_pos += max(0, int(round((t_cap - self._out_time) * SAMPLE_RATE)))
        self._expect_pos = pos + len(data) // (2 * channels)
        mono = pcm16_to_mono(data, channels)
        samples = self._resampler.process(mono)
        if not len(samples):
            return None
        chunk = AudioChunk(np.ascontiguousarray(samples), self._out_pos, t_cap)
        self._out_pos += len(samples)
        self._out_time = t_cap + len(samples) / SAMPLE_RATE
        self.samples_out += len(samples)
        return chunk

    # --- supervisor ----------------------------------------------------------------------------
    def _supervise(self) -> None:
        delay = self.retry_initial_s
        while not self._stop.is_set():
            try:
                self._open()
            except Exception as exc:  # any failure to open is "device not there (yet)"
                self._close()
                self._degrade(f"cannot open input device: {exc}; retry in {delay:.1f} s")
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, self.retry_max_s)
                continue
            reason = self._watch()
            self._close()
            if reason is None:
                return
            if self._delivered:
                delay = self.retry_initial_s      # it worked for a while: retry quickly
                self.losses += 1
            self._degrade(f"input device lost ({reason}); retry in {delay:.1f} s")
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, self.retry_max_s)

    def _degrade(self, detail: str) -> None:
        if self.state != SourceState.DEGRADED or self.detail.split(";")[0] != \
                detail.split(";")[0]:
            log.warning("%s: %s", self.source_id, detail)
        self.state = SourceState.DEGRADED
        self.detail = detail

    def _open(self) -> None:
        import pyaudio

        self._pa = open_pyaudio()
        dev = find_input_device(self._pa, self.device_spec)
        rate, channels = SAMPLE_RATE, 1
        try:
            self._pa.is_format_supported(SAMPLE_RATE, input_device=dev["index"],
                                         input_channels=1, input_format=pyaudio.paInt16)
        except ValueError:
            rate = int(dev["default_rate"])
            channels = 1
            try:
                self._pa.is_format_supported(rate, input_device=dev["index"], input_channels=1,
                                             input_format=pyaudio.paInt16)
            except ValueError:
                channels = int(dev["channels"])
        self._fmt = (rate, channels)
        self._frame_pos = 0
        self._generation += 1
        self._last_block = time.monotonic()
        self._stream = self._pa.open(format=pyaudio.paInt16, channels=channels, rate=rate,
                                     input=True, input_device_index=dev["index"],
                                     frames_per_buffer=max(1, rate * self.chunk_ms // 1000),
                                     stream_callback=self._callback)
        self._stream.start_stream()
        self.opens += 1
        how = "native" if (rate, channels) == (SAMPLE_RATE, 1) else \
            f"{rate} Hz x{channels} -> 16 kHz mono"
        self._device_detail = f"{dev['name']} (index {dev['index']}, {how})"
        self._delivered = False   # RUNNING only once audio really flows

    def _watch(self) -> str | None:
        """Wait while the device delivers; the reason it stopped, or None when told to stop."""
        while not self._stop.wait(min(1.0, self.stall_timeout_s / 4)):
            if not self._delivered and self._frame_pos > 0:
                self._delivered = True
                self.state = SourceState.RUNNING
                self.detail = self._device_detail
                log.info("%s: capturing from %s", self.source_id, self.detail)
            stream = self._stream
            try:
                active = stream is not None and stream.is_active()
            except Exception as exc:
                return f"stream error: {exc}"
            if not active:
                return "stream stopped"
            silent_for = time.monotonic() - self._last_block
            if silent_for > self.stall_timeout_s:
                return f"no audio for {self.stall_timeout_s:g} s"
        return None

    def _close(self) -> None:
        stream, self._stream = self._stream, None
        pa, self._pa = self._pa, None
        if stream is not None:
            try:
                stream.stop_stream()
            except Exception:
                pass
            try:
                stream.close()
            except Exception:
                pass
        if pa is not None:
            try:
                pa.terminate()
            except Exception:
                pass


def probe_default_input() -> dict | None:
    """The default input device, or None when there is none (used by `kwsd demo`)."""
    try:
        pa = open_pyaudio()
    except DeviceError:
        return None
    try:
        return find_input_device(pa, "")
    except DeviceError:
        return None
    finally:
        pa.terminate()

