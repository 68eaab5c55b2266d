"""From a stream of window posteriors to one event per spoken keyword.

Windows overlap (a 1 s window every hop), so a keyword is inside several consecutive windows and
their posteriors all rise. The decision smooths them, fires a keyword the first time its score
crosses its threshold (that is what keeps latency low), then disarms it until the score falls
well below the threshold (hysteresis) AND a refractory span of stream time has passed. Other
keywords are held back while the windows still mostly contain the keyword that fired, so one
word that the head half-confuses with another does not give two events.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kwsd.audio.chunk import SAMPLE_RATE
from kwsd.config import ConfigError, DecisionConfig

if TYPE_CHECKING:
    from kwsd.model.bundle import ModelBundle

SpeechRuns = Callable[[int, int, int], list[tuple[int, int]]]
"""(lo, hi, max_gap) -> runs of speech within [lo, hi) (see VadGate.speech_runs)."""

_GAP = SAMPLE_RATE * 150 // 1000          # pauses shorter than this stay inside one word
_DEFAULT_KEYWORD = SAMPLE_RATE * 700 // 1000


@dataclass(frozen=True, slots=True)
class Detection:
    keyword: str
    confidence: float
    threshold: float
    start_sample: int           # estimated keyword start in stream samples
    end_sample: int             # estimated keyword end
    window_start: int           # the window whose score crossed the threshold
    window_end: int


def sensitivity_thresholds(bundle: ModelBundle, sensitivity: str) -> dict[str, float]:
    """The bundle's calibrated thresholds for a user-facing sensitivity (kws.json `sensitivity`:
    low / medium / high map to documented false-alarm targets); "" = the bundle's defaults."""
    if not sensitivity:
        return dict(bundle.thresholds)
    table = sensitivity_table(getattr(bundle, "meta", None) or {})
    if sensitivity not in table:
        have = ", ".join(sorted(table)) or "none"
        raise ConfigError("decision.sensitivity",
                          f"the model has no thresholds for {sensitivity!r} (it has: {have})")
    return {str(k): float(v) for k, v in table[sensitivity].items()}


def sensitivity_table(meta: dict) -> dict[str, dict]:
    """kws.json's `sensitivity.thresholds`: level -> keyword -> threshold ({} when absent)."""
    table = (meta.get("sensitivity") or {}).get("thresholds")
    return table if isinstance(table, dict) else {}


def model_decision(bundle: ModelBundle, config: DecisionConfig) -> DecisionConfig:
    """The config with what it leaves to the model (`smoothing_ms = -1`) taken from kws.json
    `decision`: the settings the model's thresholds were calibrated with."""
    if config.smoothing_ms >= 0:
        return config
    block = (getattr(bundle, "meta", None) or {}).get("decision") or {}
    return dataclasses.replace(config, smoothing_ms=int(block.get("smoothing_ms", 0)))


def resolve_thresholds(keywords: Sequence[str], bundle_thresholds: dict[str, float],
                       config: DecisionConfig) -> dict[str, float]:
    """Bundle thresholds, overridden by the config; unknown keywords in the config are refused."""
    for kw in config.thresholds:
        if kw not in keywords:
            raise ConfigError(f"decision.thresholds.{kw}",
                              f"not a keyword of the model (keywords: {', '.join(keywords)})")
    out = {}
    for kw in keywords:
        out[kw] = float(config.thresholds.get(kw, bundle_thresholds.get(kw,
                                                                       config.default_threshold)))
    return out


class Decision:
    """Per-stream decision state; `update` takes one Posterior and returns 0 or 1 Detection."""

    def __init__(self, labels: Sequence[str], keywords: Sequence[str],
                 thresholds: dict[str, float], config: DecisionConfig, window_samples: int,
                 hop_samples: int, speech_runs: SpeechRuns | None = None,
                 keyword_samples: dict[str, int] | None = None) -> None:
        self.labels = list(labels)
        self.keywords = [k for k in keywords if k in self.labels]
        self._index = np.array([self.labels.index(k) for k in self.keywords], dtype=np.int64)
        self._thr = np.array([thresholds[k] for k in self.keywords], dtype=np.float32)
        self.thresholds = dict(thresholds)
        self.config = config
        self.window = window_samples
        self.hop = hop_samples
        # -1 (the model's) reaches here only without a model (model_decision resolves it)
        self._smooth_span = SAMPLE_RATE * max(0, config.smoothing_ms) // 1000
        self._refractory = SAMPLE_RATE * config.refractory_ms // 1000
        self._speech_runs = speech_runs
        self._kw_len = keyword_samples or {}
        self._history: deque[tuple[int, np.ndarray]] = deque()
        self._armed = np.ones(len(self.keywords), dtype=bool)
        self._last_fire = np.full(len(self.keywords), -(1 << 62), dtype=np.int64)
        self._hold_until = -(1 << 62)      # other keywords wait while windows hold the last one
        self._hold_keyword = -1
        self._last_end: int | None = None
        self.last_scores: np.ndarray | None = None   # smoothed keyword scores of the last update

    def reset(self) -> None:
        """Gate closed or stream jumped: smoothing restarts; refractory (stream time) stays."""
        self._history.clear()
        self._armed[:] = True
        self._last_end = None

    def update(self, start_sample: int, end_sample: int, probs: np.ndarray) -> Detection | None:
        if self._last_end is not None and end_sample - self._last_end > self.hop:
            self._history.clear()           # a gap: old windows are not neighbours any more
        self._last_end = end_sample
        self._history.append((end_sample, np.asarray(probs, dtype=np.float32)))
        while self._history and self._history[0][0] <= end_sample - max(self._smooth_span, 1):
            self._history.popleft()
        if len(self._history) == 1:
            smoothed = self._history[0][1]
        else:
            smoothed = np.mean([p for _, p in self._history], axis=0)
        scores = smoothed[self._index]
        self.last_scores = scores
        # Re-arm keywords whose score fell well below their threshold.
        self._armed |= scores < self._thr * self.config.release_ratio
        eligible = (self._armed & (scores >= self._thr)
                    & (end_sample - self._last_fire >= self._refractory))
        if start_sample < self._hold_until:
            held = np.ones_like(eligible)
            if self._hold_keyword >= 0:
                held[self._hold_keyword] = False
            eligible &= ~held
        if not eligible.any():
            return None
        margin = np.where(eligible, scores - self._thr, -np.inf)
        k = int(np.argmax(margin))
        self._armed[k] = False
        self._last_fire[k] = end_sample
        keyword = self.keywords[k]
        start, end = self._extent(keyword, start_sample, end_sample)
        self._hold_until = (start + end) // 2
        self._hold_keyword = k
        return Detection(keyword=keyword, confidence=float(scores[k]),
                         threshold=float(self.thresholds[keyword]), start_sample=start,
                         end_sample=end,
                         window_start=start_sample, window_end=end_sample)

    def _extent(self, keyword: str, win_start: int, win_end: int) -> tuple[int, int]:
        """Estimate where the keyword lies inside the window that fired.

        The window before this one did not fire, so the keyword most likely ends within the last
        hop; VAD speech runs inside the window refine both ends.
        """
        kw_len = self._kw_len.get(keyword, _DEFAULT_KEYWORD)
        end = win_end - self.hop // 2
        start = max(win_start, end - kw_len)
        if self._speech_runs is None:
            return start, end
        runs = [r for r in self._speech_runs(win_start, win_end, _GAP)
                if r[1] - r[0] >= SAMPLE_RATE // 10]
        if not runs:
            return start, end
        # The run that overlaps the last part of the window most is the keyword's.
        tail_lo = win_end - 2 * self.hop - kw_len // 2
        run = max(runs, key=lambda r: (min(r[1], win_end) - max(r[0], tail_lo), r[1]))
        end = min(run[1], win_end)
        if run[1] >= win_end - SAMPLE_RATE // 50:
            # Speech goes on past the window: the VAD cannot see where the keyword ends. A
            # model fires on the first or second window holding the whole keyword, so its end
            # lies within the last two hops: take the middle.
            end = win_end - self.hop
        start = max(run[0], win_start)
        if end - start > 1.6 * kw_len:       # continuous speech: only the keyword's own length
            start = max(win_start, end - kw_len)
        return start, end
