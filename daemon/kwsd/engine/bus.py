"""Fan-out of events to any number of subscribers, each with its own bounded queue.

The audio path publishes; it must never wait for a reader. So `publish` only appends to each
subscriber's deque under a short lock; a full queue loses its OLDEST event (the newest is the one
a client still cares about) and counts the loss, which the subscriber can report to its client.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Callable

from kwsd.events import Event

Predicate = Callable[[Event], bool]


class Subscription:
    """One subscriber's queue. `get` blocks up to `timeout`; None means timeout or closed."""

    def __init__(self, bus: EventBus, name: str, predicate: Predicate | None,
                 queue_size: int) -> None:
        if queue_size < 1:
            raise ValueError(f"queue_size must be >= 1, got {queue_size}")
        self.name = name
        self.predicate = predicate
        self.queue_size = queue_size
        self.dropped = 0
        self.delivered = 0
        self._bus = bus
        self._queue: deque[Event] = deque()
        self._cond = threading.Condition()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def queued(self) -> int:
        return len(self._queue)

    def _offer(self, event: Event) -> None:
        """Called by the bus: never blocks beyond the short queue lock."""
        with self._cond:
            if self._closed:
                return
            if len(self._queue) >= self.queue_size:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(event)
            self._cond.notify()

    def get(self, timeout: float | None = None) -> Event | None:
        """Next event; None on timeout or once the subscription is closed and drained."""
        with self._cond:
            if not self._queue and not self._closed:
                self._cond.wait(timeout)
            if self._queue:
                self.delivered += 1
                return self._queue.popleft()
            return None

    def __iter__(self):
        """Events until the subscription closes (the stream ends cleanly)."""
        while True:
            event = self.get(timeout=0.5)
            if event is not None:
                yield event
            elif self._closed and not self._queue:
                return

    def close(self) -> None:
        """End this subscription: a waiting `get` returns at once; queued events are dropped
        only by the caller's choice (they remain readable until drained)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._bus._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    """Publishes events to subscribers; assigns each published event a sequence number."""

    def __init__(self, default_queue_size: int = 256) -> None:
        self.default_queue_size = default_queue_size
        self._subs: list[Subscription] = []
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._closed = False
        self.published = 0

    @property
    def closed(self) -> bool:
        return self._closed

    def subscribe(self, name: str, predicate: Predicate | None = None,
                  queue_size: int | None = None) -> Subscription:
        sub = Subscription(self, name, predicate, queue_size or self.default_queue_size)
        with self._lock:
            if self._closed:
                sub._closed = True
                return sub
            self._subs.append(sub)
        return sub

    def publish(self, event: Event) -> Event:
        """Assign `event.sequence` and hand it to every matching subscriber. Never blocks."""
        with self._lock:
            event.sequence = next(self._seq)
            self.published += 1
            subs = list(self._subs)
        for sub in subs:
            try:
                if sub.predicate is not None and not sub.predicate(event):
                    continue
            except Exception:  # a broken filter must not stop the audio path
                continue
            sub._offer(event)
        return event

    def _remove(self, sub: Subscription) -> None:
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    def close(self) -> None:
        """End every subscription; later subscriptions start closed."""
        with self._lock:
            self._closed = True
            subs, self._subs = self._subs, []
        for sub in subs:
            with sub._cond:
                sub._closed = True
                sub._cond.notify_all()

    def stats(self) -> list[dict]:
        with self._lock:
            subs = list(self._subs)
        return [{"name": s.name, "queued": s.queued, "dropped": s.dropped} for s in subs]

    def __len__(self) -> int:
        with self._lock:
            return len(self._subs)
