"""The VAD gate: the encoder runs only while someone speaks.

webrtcvad classifies fixed 10/20/30 ms frames. The gate opens once enough speech frames appear
in a short span (a single noisy frame does not wake the network), and then hands the encoder a
pre-roll of audio from before the onset, so a keyword's first syllable, which is what webrtcvad
misses most often, is not cut off. It closes after a hang-over of non-speech, so a keyword's end
and the windows that follow it are still computed. It also remembers which recent frames were
speech, which the decision uses to estimate where a keyword starts and ends.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import webrtcvad

from kwsd.audio.chunk import SAMPLE_RATE
from kwsd.config import VadConfig


@dataclass(frozen=True, slots=True)
class SpeechBegin:
    sample: int                 # first speech frame of the onset


@dataclass(frozen=True, slots=True)
class SpeechEnd:
    sample: int                 # end of the last speech frame


@dataclass(frozen=True, slots=True)
class GatedAudio:
    samples: np.ndarray         # int16, contiguous stream audio the encoder must see
    start_sample: int


GateItem = SpeechBegin | SpeechEnd | GatedAudio


class VadGate:
    """Turns a stream of samples into gated audio plus speech begin/end markers."""

    def __init__(self, config: VadConfig, pre_roll_samples: int) -> None:
        self.config = config
        self.frame = SAMPLE_RATE * config.frame_ms // 1000
        self.pre_roll_samples = max(pre_roll_samples, SAMPLE_RATE * 300 // 1000)
        self._vad = webrtcvad.Vad(config.aggressiveness)
        self._onset_frames = max(1, math.ceil(config.min_speech_ms / config.frame_ms))
        self._onset_span = 2 * self._onset_frames
        self._hangover = SAMPLE_RATE * config.hangover_ms // 1000
        # Mean square below this is silence whatever webrtcvad says (cheap noise rejection).
        self._floor = (10 ** (config.energy_floor_dbfs / 10)) * 32768.0 ** 2
        ring_frames = math.ceil(self.pre_roll_samples / self.frame) + self._onset_span
        self._ring: deque[tuple[int, np.ndarray]] = deque(maxlen=ring_frames)
        self._recent: deque[tuple[int, bool]] = deque(maxlen=self._onset_span)
        history_frames = math.ceil(8 * SAMPLE_RATE / self.frame)
        self._history: deque[tuple[int, bool]] = deque(maxlen=history_frames)
        self._pending = np.zeros(0, dtype=np.int16)
        self._pending_start = 0
        self._next_expected: int | None = None
        self.is_open = not config.enabled
        self._last_speech_end = 0
        self._fed_until: int | None = None   # end of the last audio handed to the encoder
        self.samples_seen = 0
        self.samples_open = 0

    # --- input ---------------------------------------------------------------------------------
    def push(self, samples: np.ndarray, start_sample: int) -> list[GateItem]:
        """Feed 16 kHz int16 samples starting at `start_sample`; returns what follows from them."""
        if self._next_expected is not None and start_sample != self._next_expected:
            self._discontinuity(start_sample)
        out: list[GateItem] = []
        if not self.config.enabled:   # everything passes at once; frames only feed the history
            if len(samples):
                out.append(GatedAudio(np.ascontiguousarray(samples, dtype=np.int16),
                                      start_sample))
                self.samples_open += len(samples)
        if not len(self._pending):
            self._pending_start = start_sample
        self._pending = np.concatenate([self._pending, samples]) if len(self._pending) \
            else np.asarray(samples, dtype=np.int16)
        self._next_expected = start_sample + len(samples)
        self.samples_seen += len(samples)
        n_frames = len(self._pending) // self.frame
        if n_frames == 0:
            return out
        used = n_frames * self.frame
        block, self._pending = self._pending[:used], self._pending[used:]
        block_start = self._pending_start
        self._pending_start += used
        frames = block.reshape(n_frames, self.frame)
        energy = np.einsum("ij,ij->i", frames.astype(np.float32), frames.astype(np.float32))
        loud = energy / self.frame >= self._floor
        run_start: int | None = None        # open audio collected in this call
        prefix: list[np.ndarray] = []       # pre-roll frames from before this block
        for i in range(n_frames):
            f_start = block_start + i * self.frame
            frame = frames[i]
            speech = bool(loud[i]) and self._vad.is_speech(frame.tobytes(), SAMPLE_RATE)
            self._history.append((f_start, speech))
            if not self.config.enabled:
                continue
            self._ring.append((f_start, frame))
            self._recent.append((f_start, speech))
            if speech:
                self._last_speech_end = f_start + self.frame
            if not self.is_open:
                if sum(s for _, s in self._recent) >= self._onset_frames:
                    onset = next(s for s, sp in self._recent if sp)
                    self._open(onset, out)
                    run_start = self._preroll_start()
                    # Snapshot now: the ring keeps turning while this block is processed.
                    prefix = [f for s, f in self._ring if run_start <= s < block_start]
                continue
            if run_start is None:
                run_start = f_start
            if not speech and f_start + self.frame - self._last_speech_end >= self._hangover:
                self._emit(out, block, block_start, run_start, f_start + self.frame, prefix)
                run_start, prefix = None, []
                self._close(out)
        if run_start is not None:
            self._emit(out, block, block_start, run_start, block_start + used, prefix)
        return out

    def close(self) -> list[GateItem]:
        """Force the gate shut (end of stream): emits SpeechEnd if it was open."""
        out: list[GateItem] = []
        if self.is_open and self.config.enabled:
            self._close(out)
        return out

    # --- history for the decision ----------------------------------------------------------------
    def speech_runs(self, lo: int, hi: int, max_gap: int) -> list[tuple[int, int]]:
        """Runs of speech frames within [lo, hi), merging gaps shorter than `max_gap` samples."""
        runs: list[list[int]] = []
        for start, speech in self._history:
            if not speech or start + self.frame <= lo or start >= hi:
                continue
            end = start + self.frame
            if runs and start - runs[-1][1] < max_gap:
                runs[-1][1] = end
            else:
                runs.append([start, end])
        return [(max(a, lo), min(b, hi)) for a, b in runs]

    @property
    def duty_cycle(self) -> float:
        return self.samples_open / self.samples_seen if self.samples_seen else 0.0

    # --- internals ----------------------------------------------------------------------------
    def _open(self, onset: int, out: list[GateItem]) -> None:
        self.is_open = True
        out.append(SpeechBegin(onset))

    def _close(self, out: list[GateItem]) -> None:
        self.is_open = False
        self._recent.clear()
        out.append(SpeechEnd(self._last_speech_end))

    def _preroll_start(self) -> int:
        start = self._ring[0][0]
        if self._fed_until is not None and self._fed_until > start:
            start = self._fed_until     # overlap with audio already fed: continue, don't repeat
        return start

    def _emit(self, out: list[GateItem], block: np.ndarray, block_start: int, start: int,
              end: int, prefix: list[np.ndarray]) -> None:
        """Append GatedAudio for [start, end); audio before `block_start` is `prefix`."""
        if end <= start:
            return
        if start < block_start:
            samples = np.concatenate([*prefix, block[: end - block_start]])
            start = end - len(samples)
        else:
            samples = block[start - block_start: end - block_start]
        self.samples_open += len(samples)
        out.append(GatedAudio(np.ascontiguousarray(samples), start))
        self._fed_until = end

    def _discontinuity(self, start_sample: int) -> None:
        """Input jumped (dropped capture blocks): the ring and partial frame no longer fit."""
        self._pending = np.zeros(0, dtype=np.int16)
        self._pending_start = start_sample
        self._ring.clear()
        self._recent.clear()
