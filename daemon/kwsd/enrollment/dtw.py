"""Subsequence DTW: where inside a window does a template fit best, and how well.

Every template frame is matched to exactly one window frame, so a path's cost is a mean over
the template's frames (comparable between templates of different lengths). Each step advances
the window by 1 frame (same speed), 0 (the live word is faster) or 2 (slower); the two off-speed
steps pay a small penalty so a path cannot cheaply collapse onto one frame. All predecessors lie
on the previous template row, so a row is computed for all window positions (and all windows of
a batch) at once: a few numpy operations per template frame.
"""

from __future__ import annotations

import numpy as np

OFF_SPEED_PENALTY = 0.08
# 0.08, not 0.03: with the cheaper off-speed steps a template of a long phrase could squeeze
# onto a shorter word. Chosen on real-train's held-out callers (scripts/eval-enroll.py
# --select; never on real-dev): 3-shot recall at <= 5 false alarms/h 79 -> 91 % alone
# with AGREE = 2 (detector.py); 0.15 gave 89 %.


def cost_matrix(template: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Cosine distances [N, n, m] between template frames [n, H] and window frames [N, m, H]
    (both L2-normalised)."""
    b, m, h = windows.shape
    sim = (windows.reshape(b * m, h) @ template.T).reshape(b, m, -1)
    return 1.0 - sim.transpose(0, 2, 1)


def subsequence_dtw(template: np.ndarray, windows: np.ndarray,
                    penalty: float = OFF_SPEED_PENALTY) -> np.ndarray:
    """Mean frame distance of the best alignment of the whole template to any part of each
    window: [N] (lower = closer)."""
    windows = np.asarray(windows, dtype=np.float32)
    if windows.ndim == 2:
        windows = windows[None]
    cost = cost_matrix(np.asarray(template, dtype=np.float32), windows)
    n = cost.shape[1]
    acc = cost[:, 0, :].copy()
    inf = np.float32(np.inf)
    for i in range(1, n):
        prev = acc
        diag = np.empty_like(prev)
        diag[:, 0] = inf
        diag[:, 1:] = prev[:, :-1]
        skip = np.empty_like(prev)
        skip[:, :2] = inf
        skip[:, 2:] = prev[:, :-2]
        best = np.minimum(diag, np.minimum(prev, skip) + penalty)
        acc = cost[:, i, :] + best
    return acc.min(axis=1) / n
