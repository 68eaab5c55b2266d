"""An enrolled keyword and the score the decision sees for it in every window.

score = 1 - (mean cosine distance of the best subsequence-DTW alignment), best over the
keyword's templates: near 1 when a window holds the phrase, lower otherwise. It goes through the
same `Decision` (threshold, hysteresis, refractory span) as the bundle's keywords.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kwsd.enrollment.dtw import subsequence_dtw


@dataclass
class EnrolledKeyword:
    name: str
    templates: list[np.ndarray]         # [n_i, H] normalised frame features each
    threshold: float
    encoder_id: str
    fa_target_per_h: float = 1.0
    info: dict = field(default_factory=dict)   # calibration and checks, for humans

    def scores(self, windows: np.ndarray) -> np.ndarray:
        """[N] scores for window frame features [N, m, H]."""
        dist = np.min([subsequence_dtw(t, windows) for t in self.templates], axis=0)
        return np.clip(1.0 - dist, 0.0, 1.0).astype(np.float32)

    @property
    def duration_s(self) -> float:
        """Typical phrase length (20 ms frames), for the decision's extent estimate."""
        return float(np.median([len(t) for t in self.templates])) * 0.02


class EnrolledSet:
    """The enrolled keywords one stream scores (immutable: a change makes a new set)."""

    def __init__(self, keywords: list[EnrolledKeyword] | None = None) -> None:
        self.keywords = list(keywords or [])
        self.names = [k.name for k in self.keywords]
        self.thresholds = {k.name: float(k.threshold) for k in self.keywords}

    def __bool__(self) -> bool:
        return bool(self.keywords)

    def scores(self, windows: np.ndarray) -> np.ndarray:
        """[N, K] scores, K = len(names)."""
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim == 2:
            windows = windows[None]
        if not self.keywords:
            return np.zeros((len(windows), 0), dtype=np.float32)
        return np.stack([k.scores(windows) for k in self.keywords], axis=1)
