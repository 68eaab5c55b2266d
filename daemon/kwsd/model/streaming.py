"""Keyword posteriors over a live stream: a sliding window advanced by a hop.

One `StreamingClassifier` per audio stream. Audio arrives in chunks of any size; every hop,
once a full window is buffered, the window goes through encoder + head and one `Posterior`
comes out. All work happens at window boundaries on fixed sample ranges, so the posteriors do
not depend on how the audio was chunked.

Conv-feature cache. The conv stack is most of the encoder's cost and consecutive windows overlap
by window - hop, so the projected conv features of the overlap can be reused and only
hop/20 ms new frames computed per hop. With per-frame LayerNorm convs (the demo encoder) every
conv frame depends only on its own 400 samples: the cache is exact (equal to the plain window
computation up to float rounding). DistilHuBERT's first conv layer GroupNorm normalises each
channel over the whole input, so there the cache is an approximation: each new block of frames
is normalised with the statistics of the window it first appears in. Its difference from the
plain window computation is measured by `kwsd bench`; it is off by default for group-norm
encoders and switched on by kws.json `streaming.cache_conv` or the constructor. With the conv
cache on, the positional conv is cached too (posconv_cache.py: exact, just cheaper).

Precision: the constructor (the config's `engine.precision`), else kws.json
`streaming.precision`, else fp32 picks an inference copy of the encoder (precision.py,
runtime.py; bf16 / int8 variants are faster and slightly different: `kwsd bench --bundle DIR
--choose` measures them and records the fastest whose decisions match fp32). One copy per
bundle and precision is shared by all streams.

Cascade (cascade.py): when kws.json `streaming.cascade` enables it (or the constructor's
`cascade` says "on"), a cheap stage one looks at each window first (`_stage_one_passes`, the one
seam); windows it rejects skip the encoder and head and get a "no keyword" posterior, and the
conv cache restarts from the full window at the next window that passes.

Train as you stream: `StreamingClassifier.window_states` runs exactly this code path over a
clip and returns the per-window hidden states the head sees, so training and evaluation use the
features the daemon computes live.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from kwsd.model import posconv_cache
from kwsd.model.bundle import ModelBundle
from kwsd.model.cascade import CascadeGate, cascade_active, no_keyword_probs
from kwsd.model.precision import resolve_precision
from kwsd.model.runtime import shared_inference_encoder
from kwsd.model.scheduler import InferenceScheduler, WindowJob, classify_windows, conv_features

_INT16_SCALE = np.float32(1.0 / 32768.0)  # a power of two: same values as int16_to_float


@dataclass(frozen=True)
class Posterior:
    """Class probabilities (bundle.labels order) for audio [start_sample, end_sample)."""

    start_sample: int
    end_sample: int
    probs: np.ndarray


class StreamingClassifier:
    def __init__(self, bundle: ModelBundle, *, window_samples: int | None = None,
                 hop_samples: int | None = None, cache_conv: bool | None = None,
                 precision: str | None = None, cascade: str | bool | None = None,
                 clock=time.perf_counter, scheduler: InferenceScheduler | None = None) -> None:
        self.bundle = bundle
        opts = bundle.meta.get("streaming", {})
        self.precision = resolve_precision(bundle.meta, precision)
        self.encoder = shared_inference_encoder(bundle, self.precision)
        self.head = bundle.head
        cfg = self.encoder.config
        self.window = int(window_samples or bundle.window_samples)
        self.hop = int(hop_samples or bundle.hop_samples)
        frame = cfg.hop_samples
        if self.hop <= 0 or self.hop % frame:
            raise ValueError(f"hop must be a positive multiple of {frame} samples (20 ms), "
                             f"got {self.hop}")
        if self.hop > self.window:
            raise ValueError(f"hop {self.hop} exceeds window {self.window}")
        self.frames = cfg.num_frames(self.window)
        if self.frames < 1:
            raise ValueError(f"window {self.window} is shorter than the encoder's receptive "
                             f"field ({cfg.receptive_field} samples)")
        self.frames_per_hop = self.hop // frame
        self.cache_exact = cfg.feat_extract_norm == "layer"
        if cache_conv is None:
            cache_conv = bool(opts.get("cache_conv", self.cache_exact))
        self.cache_conv = bool(cache_conv) and self.frames_per_hop < self.frames
        # Preallocated: sample buffer (one window + one hop) and two feature buffers.
        self._buf = np.zeros(self.window + self.hop, dtype=np.float32)
        self._wave = torch.from_numpy(self._buf)
        self._feats = [torch.zeros(1, self.frames, cfg.hidden_size) for _ in range(2)]
        self._capture: list[torch.Tensor] | None = None
        self._posconv: posconv_cache.PosConvCache | None = None
        if self.cache_conv and posconv_cache.applicable(self.frames, cfg.num_conv_pos_embeddings):
            self._posconv = posconv_cache.PosConvCache(
                self.encoder.encoder.pos_conv_embed, self.frames, cfg.hidden_size,
                cfg.num_conv_pos_embedding_groups)
        self._clock = clock
        # Stage one of the cascade (None: every window runs the encoder).
        loaded = getattr(bundle, "cascade", None)
        self.gate = CascadeGate(loaded) if cascade_active(loaded, cascade) else None
        self._rejected = no_keyword_probs(list(bundle.labels))
        if scheduler is not None and scheduler.precision != self.precision:
            raise ValueError(f"scheduler runs {scheduler.precision}, this stream {self.precision}")
        self.scheduler = scheduler
        # Seconds spent per part since construction (bench and status read them); with a
        # scheduler, "scheduled" is the time spent waiting for the batch that held a window
        # (its conv, transformer and head ran there, with other streams' windows).
        self.timings = {"conv": 0.0, "posconv": 0.0, "transformer": 0.0, "head": 0.0}
        if scheduler is not None:
            self.timings["scheduled"] = 0.0
        if self.gate is not None:
            self.timings["stage_one"] = 0.0
        self.reset()

    # -- state ---------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget all audio; the next chunk starts a new window grid at its start_sample."""
        self._next_sample: int | None = None  # expected start_sample of the next chunk
        self._buf_start = 0  # absolute sample index of _buf[0]
        self._buf_len = 0
        self._windows = 0  # windows emitted since reset
        self._warm = False  # the conv cache holds the previous window's features
        self._cur = 0  # which _feats buffer holds the last window's features
        if getattr(self, "_posconv", None) is not None:
            self._posconv.reset()
        if getattr(self, "gate", None) is not None:
            self.gate.reset()

    def accept(self, samples: np.ndarray, start_sample: int) -> list[Posterior]:
        """Feed int16 mono 16 kHz samples starting at absolute `start_sample`."""
        if not isinstance(samples, np.ndarray) or samples.dtype != np.int16:
            raise TypeError(f"samples must be an int16 numpy array, got "
                            f"{getattr(samples, 'dtype', type(samples).__name__)}")
        if samples.ndim == 2 and samples.shape[1] == 1:
            samples = samples[:, 0]
        if samples.ndim != 1:
            raise ValueError(f"samples must be mono (1-D), got shape {samples.shape}")
        start_sample = int(start_sample)
        if self._next_sample is None or start_sample != self._next_sample:
            self.reset()
            self._buf_start = start_sample
        self._next_sample = start_sample + len(samples)
        out: list[Posterior] = []
        pos = 0
        with torch.inference_mode():
            while pos < len(samples):
                n = min(len(samples) - pos, len(self._buf) - self._buf_len)
                np.multiply(samples[pos:pos + n], _INT16_SCALE,
                            out=self._buf[self._buf_len:self._buf_len + n])
                self._buf_len += n
                pos += n
                while self._buf_len >= self.window:
                    out.append(self._emit())
        return out

    # -- computation ---------------------------------------------------------------------------
    def _emit(self) -> Posterior:
        wave = self._wave[: self.window].unsqueeze(0)
        start = self._buf_start
        if self._capture is None and self.gate is not None and not self._stage_one_passes(wave):
            probs = self._rejected.copy()
        elif self._capture is None:
            _, probs = self._classify_window(wave)
        else:  # window_states(): keep what the head would see, skip the head
            states = self._window_states(wave)
            self._capture.append(torch.stack(states, dim=1)[0].clone())
            probs = np.empty(0, dtype=np.float32)
        post = Posterior(start, start + self.window, probs)
        # Advance by one hop: keep the samples from the next window's start.
        keep = self._buf_len - self.hop
        self._buf[:keep] = self._buf[self.hop:self._buf_len]
        self._buf_len = keep
        self._buf_start += self.hop
        self._windows += 1
        return post

    def _stage_one_passes(self, wave: torch.Tensor) -> bool:
        """The cascade's seam: does this window go on to the encoder? A rejected window breaks
        the conv cache's chain, so the next window that passes computes its features whole."""
        t0 = self._clock()
        ok = self.gate.check(wave[0])
        self.timings["stage_one"] = self.timings.get("stage_one", 0.0) + self._clock() - t0
        if not ok:
            self._warm = False
        return ok

    def _classify_window(self, wave: torch.Tensor) -> tuple[list[torch.Tensor], np.ndarray]:
        """One window -> (hidden states, probabilities): alone, or in the shared scheduler's
        batch with other streams' windows (same numbers up to float rounding)."""
        conv_input, reference = self._conv_input(wave)
        if self.scheduler is not None:
            t0 = self._clock()
            job = self.scheduler.run(WindowJob(conv_input, reference, self._assemble, id(self),
                                               self.hop / self.bundle.sample_rate))
            self.timings["scheduled"] += self._clock() - t0
            return job.states, job.probs
        x0 = self._embed(conv_input, reference)
        states, probs = classify_windows(self.encoder, self.head, x0, timings=self.timings,
                                         clock=self._clock)
        return states, probs[0].numpy().copy()

    def _window_states(self, wave: torch.Tensor) -> list[torch.Tensor]:
        """Hidden states only (training's window_states): conv, caches, transformer."""
        x0 = self._embed(*self._conv_input(wave))
        t0 = self._clock()
        states = self.encoder.encoder.run_layers(x0)
        self.timings["transformer"] += self._clock() - t0
        return states

    def _embed(self, conv_input: torch.Tensor, reference: torch.Tensor | None) -> torch.Tensor:
        t0 = self._clock()
        new = conv_features(self.encoder, conv_input, reference)
        self.timings["conv"] += self._clock() - t0
        return self._assemble(new)

    def _conv_input(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The samples the conv stack must see for this window: all of it (first window, or no
        cache), else the new hop's frames with their receptive field; and the group-norm
        reference of the approximate cache (None when the cache is exact or unused)."""
        if not self.cache_conv or not self._warm:
            return wave, None
        enc = self.encoder
        first = self.frames - self.frames_per_hop
        hop, rf = enc.config.hop_samples, enc.config.receptive_field
        seg = wave[:, first * hop: first * hop + (self.frames_per_hop - 1) * hop + rf]
        return seg, None if self.cache_exact else wave

    def _assemble(self, new: torch.Tensor) -> torch.Tensor:
        """Newly computed projected conv features -> this window's transformer input x0
        [1, frames, H], through this stream's conv-feature and positional-conv caches."""
        t0 = self._clock()
        enc = self.encoder
        feats = self._window_features(new)
        if self._posconv is None:
            x0 = enc.encoder.embed_positions(feats)
        else:
            self._posconv.push(new[0])
            x0 = enc.encoder.layer_norm(feats + self._posconv.output())
        self.timings["posconv"] += self._clock() - t0
        return x0

    def _window_features(self, new: torch.Tensor) -> torch.Tensor:
        """Projected conv features [1, frames, H] of the window, from the new ones."""
        if not self.cache_conv:
            return new
        if not self._warm:  # first window, or the first after stage one rejected some
            feats = self._feats[self._cur]
            feats.copy_(new)
            if self._posconv is not None:
                self._posconv.reset()
            self._warm = True
            return feats
        first = self.frames - self.frames_per_hop
        src, dst = self._feats[self._cur], self._feats[1 - self._cur]
        dst[:, :first].copy_(src[:, self.frames_per_hop:])
        dst[:, first:].copy_(new)
        self._cur = 1 - self._cur
        return dst

    # -- training / evaluation -----------------------------------------------------------------
    def window_states(self, samples: np.ndarray, start_sample: int = 0
                      ) -> tuple[np.ndarray, torch.Tensor]:
        """Train as you stream: run a clip through this very streaming path (from a reset) and
        return (window start samples [N], hidden states [N, num_states, frames, H]) - exactly
        what the head receives live, conv cache and all. Feed the states to `bundle.head` (in
        train mode, with grad) to train it on the features the daemon will compute. Resets
        this classifier before and after.
        """
        self.reset()
        self._capture = []
        try:
            posts = self.accept(np.ascontiguousarray(samples, dtype=np.int16), start_sample)
            states = self._capture
        finally:
            self._capture = None
            self.reset()
        starts = np.asarray([p.start_sample for p in posts], dtype=np.int64)
        if not states:
            cfg = self.encoder.config
            return starts, torch.zeros(0, cfg.num_hidden_layers + 1, self.frames,
                                       cfg.hidden_size)
        return starts, torch.stack(states)


def encode_windows(bundle: ModelBundle, windows: torch.Tensor,
                   precision: str | None = None) -> torch.Tensor:
    """Plain per-window computation in batch: float windows [N, window] -> hidden states
    [N, num_states, frames, H], with the encoder copy streams use (kws.json
    `streaming.precision` unless given). Equals the streaming path to float rounding when the
    conv cache is exact or off (tested); with the approximate group-norm cache use
    `StreamingClassifier.window_states`."""
    encoder = shared_inference_encoder(bundle, resolve_precision(bundle.meta, precision))
    with torch.inference_mode():
        states = encoder(windows)
    return torch.stack(states, dim=1)  # outside inference mode: usable for training


def posteriors_from_states(bundle: ModelBundle, states: torch.Tensor) -> np.ndarray:
    """Hidden states [N, num_states, frames, H] -> probabilities [N, labels] (eval mode head)."""
    with torch.inference_mode():
        return torch.softmax(bundle.head(states), dim=-1).numpy()
