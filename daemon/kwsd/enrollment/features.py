"""Encoder frame features, computed by the daemon's own streaming code.

The last transformer layer's frames, L2-normalised (the layer that separated keywords best in
a 3-shot check, ENVIRONMENT-NOTES). Live windows and enrollment templates both come from
`StreamingClassifier.window_states`, so a template is what the daemon will see when the phrase
is said. An example is placed in the middle of one window (silence around it, as when said
alone) and only the frames inside the spoken part become the template.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kwsd.enrollment.trim import MARGIN

if TYPE_CHECKING:
    import torch

    from kwsd.model.bundle import ModelBundle
    from kwsd.model.streaming import StreamingClassifier

LAYER = -1
_IDS: dict[tuple[str, int, int], str] = {}


def encoder_id(bundle: ModelBundle) -> str:
    """Content hash of the bundle's encoder (config + weights): what templates were made for."""
    path = Path(bundle.path)
    files = [path / "config.json", path / "model.safetensors"]
    key = (str(path.resolve()), *(int(f.stat().st_mtime_ns) for f in files[1:]))
    if key not in _IDS:
        h = hashlib.sha256()
        for f in files:
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
        _IDS[key] = "sha256:" + h.hexdigest()[:16]
    return _IDS[key]


def normalise(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames, dtype=np.float32)
    return frames / np.maximum(np.linalg.norm(frames, axis=-1, keepdims=True), 1e-6)


def frames_of(states: torch.Tensor | list) -> np.ndarray:
    """Hidden states of windows ([N, layers, frames, H] or one window's list of [1, frames, H])
    -> normalised frame features [N, frames, H]."""
    if isinstance(states, list | tuple):
        return normalise(states[LAYER][0].numpy())[None]
    return normalise(states[:, LAYER].numpy())


def clip_windows(classifier: StreamingClassifier, samples: np.ndarray) -> np.ndarray:
    """Frame features [N, frames, H] of every window the stream would compute over `samples`."""
    _, states = classifier.window_states(np.asarray(samples, dtype=np.int16))
    return frames_of(states)


def template(classifier: StreamingClassifier, samples: np.ndarray, span: tuple[int, int]
             ) -> tuple[np.ndarray, np.ndarray]:
    """(frame features [n, H] of the phrase at samples[span], all frames [m, H] of its window).

    The window is centred on the phrase and holds the recording's own audio around it (the
    room, the line), like a live window; zeros only where the recording is shorter."""
    window = classifier.window
    samples = np.asarray(samples, dtype=np.int16)
    a, b = int(span[0]), int(min(span[1], span[0] + window))
    lo = (a + b) // 2 - window // 2
    padded = np.zeros(window, dtype=np.int16)
    src_lo, src_hi = max(lo, 0), min(lo + window, len(samples))
    padded[src_lo - lo: src_hi - lo] = samples[src_lo:src_hi]
    frames = clip_windows(classifier, padded)[0]
    cfg = classifier.encoder.config
    hop, rf = cfg.hop_samples, cfg.receptive_field
    p_lo, p_hi = a - lo, b - lo
    centres = np.arange(len(frames)) * hop + rf // 2
    keep = (centres >= p_lo + MARGIN // 2) & (centres < p_hi - MARGIN // 2)
    if keep.sum() < 2:
        keep = (centres >= p_lo) & (centres < p_hi)
    return frames[keep], frames
