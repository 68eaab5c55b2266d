"""An enrolled keyword and the score the decision sees for it in every window.

score = 1 - (mean cosine distance of the best subsequence-DTW alignment), averaged over the
`AGREE` templates that fit the window best: near 1 when a window holds the phrase, lower
otherwise. Asking two templates to agree (with three or more examples) is what keeps another
phrase that happens to resemble one example from firing: on real-train's held-out callers it
took 3-shot false alarms from 6.7 to 1.9 per hour at a higher recall. It goes through the same
`Decision` (threshold, hysteresis, refractory span) as the bundle's keywords.

`SCORER` names this rule; an enrolled keyword stores the scorer its threshold was calibrated
for, and a keyword made with another is refused with a re-enrollment hint (store.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kwsd.enrollment.dtw import OFF_SPEED_PENALTY, subsequence_dtw

AGREE = 2  # templates whose distances are averaged (all of them when fewer)
SCORER = f"dtw-agree{AGREE}-p{OFF_SPEED_PENALTY:g}"


@dataclass
class EnrolledKeyword:
    name: str
    templates: list[np.ndarray]         # [n_i, H] normalised frame features each
    threshold: float
    encoder_id: str
    fa_target_per_h: float = 1.0
    info: dict = field(default_factory=dict)   # calibration and checks, for humans
    scorer: str = SCORER                       # the rule its threshold was calibrated for

    def scores(self, windows: np.ndarray) -> np.ndarray:
        """[N] scores for window frame features [N, m, H]."""
        dist = np.sort([subsequence_dtw(t, windows) for t in self.templates], axis=0)
        return np.clip(1.0 - dist[:AGREE].mean(axis=0), 0.0, 1.0).astype(np.float32)

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
