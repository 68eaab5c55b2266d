"""One training example = one clip, padded like a stream, augmented, with its labelled windows.

The clip is embedded in quiet noise on both sides (a live stream has audio around every word),
augmented as a whole (so reverberation tails and noise cross window borders as they do live),
then cut into windows on a hop grid of random phase. Negative windows are subsampled per clip:
a long sentence would otherwise flood the set with nearly identical windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kwsd.audio.chunk import SAMPLE_RATE
from kwsd.head_training.dataset import (
    SILENCE,
    UNKNOWN,
    Clip,
    Window,
    label_windows,
    place_windows,
    speech_mask,
)


@dataclass(frozen=True)
class WindowPolicy:
    window: int
    hop: int
    pad_s: tuple[float, float] = (0.3, 0.9)  # quiet lead/tail added on each side
    max_unknown: int = 1  # per keyword clip and copy (partial-keyword windows first)
    max_unknown_negative: int = 2  # per negative clip and copy
    p_silence: float = 0.15  # chance of keeping one quiet window of a speech clip
    max_noise_clip: int = 1  # windows from a `_silence_` clip


@dataclass
class ClipWindows:
    samples: np.ndarray  # int16, the padded and augmented clip
    windows: list[Window]
    steps: list[str]  # augmentation applied ("" when clean)


def _quiet(rng: np.random.Generator, n: int) -> np.ndarray:
    level = 10 ** (rng.uniform(-75, -55) / 20) * 32768
    return (rng.standard_normal(n) * level).astype(np.float32)


def _remap_mask(mask: np.ndarray, scale: float, offset_s: float) -> np.ndarray:
    """Speech mask after augmentation moved time: t_out = t_in / scale + offset."""
    n = len(mask)
    t_out = np.arange(n)
    t_in = np.round((t_out - offset_s * SAMPLE_RATE) * scale).astype(np.int64)
    ok = (t_in >= 0) & (t_in < n)
    out = np.zeros(n, dtype=bool)
    out[ok] = mask[t_in[ok]]
    return out


def make_clip_windows(clip: Clip, samples: np.ndarray, policy: WindowPolicy,
                      rng: np.random.Generator, augmenter=None) -> ClipWindows:
    """Pad, augment (if an `augmenter` with `.apply(samples, rng)` is given) and window a clip."""
    w, hop = policy.window, policy.hop
    x = samples.astype(np.float32)
    if clip.label == SILENCE:
        # noise clips: loop to at least one window plus a hop, no padding (it is all background)
        need = w + hop
        if len(x) < need:
            x = np.tile(x, -(-need // max(len(x), 1)))[:need] if len(x) else _quiet(rng, need)
        pre = 0
    else:
        pre = int(rng.uniform(*policy.pad_s) * SAMPLE_RATE)
        post = int(rng.uniform(*policy.pad_s) * SAMPLE_RATE)
        short = max(0, w + hop - (pre + len(x) + post))
        post += short
        x = np.concatenate([_quiet(rng, pre), x, _quiet(rng, post)])
    mask = speech_mask(x) if clip.label != SILENCE else np.zeros(len(x), dtype=bool)
    span = None
    if clip.kw_start_s is not None and clip.kw_end_s is not None and clip.label not in (
            UNKNOWN, SILENCE):
        span = (pre + int(clip.kw_start_s * SAMPLE_RATE), pre + int(clip.kw_end_s * SAMPLE_RATE))
    audio = np.clip(np.round(x), -32768, 32767).astype(np.int16)
    steps: list[str] = []
    if augmenter is not None:
        res = augmenter.apply(audio, rng)
        audio, steps = res.samples, list(res.steps)
        if res.time_scale != 1.0 or res.offset_s != 0.0:
            mask = _remap_mask(mask, res.time_scale, res.offset_s)
            if span is not None:
                span = tuple(int(s / res.time_scale + res.offset_s * SAMPLE_RATE) for s in span)
    starts = place_windows(len(audio), w, hop, int(rng.integers(hop)))
    windows = label_windows(starts, w, clip.label, span, mask)
    return ClipWindows(audio, _subsample(windows, clip.label, policy, rng), steps)


def _subsample(windows: list[Window], label: str, policy: WindowPolicy,
               rng: np.random.Generator) -> list[Window]:
    if label == SILENCE:
        keep = rng.permutation(len(windows))[: policy.max_noise_clip]
        return [windows[i] for i in sorted(keep)]
    pos = [x for x in windows if x.label not in (UNKNOWN, SILENCE)]
    partial = [x for x in windows if x.label == UNKNOWN and x.coverage > 0]
    other = [x for x in windows if x.label == UNKNOWN and x.coverage == 0]
    sil = [x for x in windows if x.label == SILENCE]
    unk = partial + [other[i] for i in rng.permutation(len(other))]
    chosen = pos + unk[: policy.max_unknown if label != UNKNOWN else policy.max_unknown_negative]
    if sil and rng.random() < policy.p_silence:
        chosen.append(sil[int(rng.integers(len(sil)))])
    return sorted(chosen, key=lambda x: x.start)
