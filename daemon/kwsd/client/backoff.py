"""Reconnect delays: exponential with jitter, so many clients of a restarted daemon don't all
knock at the same instant."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import grpc

RETRYABLE = frozenset({
    grpc.StatusCode.UNAVAILABLE,          # daemon down, restarting or stopping
    grpc.StatusCode.CANCELLED,            # connection dropped under the call
    grpc.StatusCode.UNKNOWN,              # daemon died mid-call
    grpc.StatusCode.INTERNAL,             # broken stream
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,   # too many subscribers for now
})
"""Errors after which subscribing again may work; others (bad filter, wrong token) won't."""


@dataclass
class Backoff:
    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.2
    _next: float = field(default=0.0, repr=False)

    def reset(self) -> None:
        self._next = 0.0

    def next_delay(self) -> float:
        self._next = self.initial_s if not self._next else min(self._next * self.factor,
                                                                self.max_s)
        return self._next * (1 + random.uniform(-self.jitter, self.jitter))
