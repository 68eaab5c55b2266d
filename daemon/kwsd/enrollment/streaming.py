"""The daemon's streaming classifier, plus a score per enrolled keyword in every window.

A subclass of `StreamingClassifier`: the window's hidden states are computed once, the bundle's
head turns them into its posteriors as before, and the last layer's frames are matched against
the enrolled templates; the posterior's `probs` get the enrolled scores appended (labels: the
bundle's, then the enrolled names), so one `Decision` decides trained and enrolled keywords
alike. `on_window` (evaluation) receives each window's frame features.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from kwsd.enrollment.detector import EnrolledSet
from kwsd.enrollment.features import frames_of
from kwsd.model.streaming import Posterior, StreamingClassifier


class EnrolledClassifier(StreamingClassifier):
    def __init__(self, bundle, enrolled: EnrolledSet, *,
                 on_window: Callable[[int, int, np.ndarray], None] | None = None,
                 **kwargs) -> None:
        # Every window's states feed the enrolled templates, which the cascade's stage one
        # knows nothing about: the encoder runs on every window here.
        kwargs["cascade"] = "off"
        super().__init__(bundle, **kwargs)
        self.enrolled = enrolled
        self.on_window = on_window
        self._last_states = None

    def _classify_window(self, wave):
        states, probs = super()._classify_window(wave)
        self._last_states = states
        return states, probs

    def _emit(self) -> Posterior:
        post = super()._emit()
        if self._capture is not None:       # window_states(): hidden states only
            return post
        frames = frames_of(self._last_states)
        if self.on_window is not None:
            self.on_window(post.start_sample, post.end_sample, frames[0])
        if not self.enrolled:
            return post
        scores = self.enrolled.scores(frames)[0]
        return Posterior(post.start_sample, post.end_sample,
                         np.concatenate([post.probs, scores]).astype(np.float32))
