import threading

from kwsd.engine.bus import EventBus
from kwsd.events import Event, EventKind


def _event(i: int = 0, keyword: str = "yes") -> Event:
    return Event(kind=EventKind.DETECTION, source_id="s", start_sample=i, end_sample=i + 1,
                 wall_time=0.0, keyword=keyword, confidence=0.9)


def test_sequence_numbers_increase_and_every_subscriber_gets_each_event():
    bus = EventBus()
    a, b = bus.subscribe("a"), bus.subscribe("b")
    for i in range(5):
        bus.publish(_event(i))
    got_a = [a.get(0).sequence for _ in range(5)]
    got_b = [b.get(0).sequence for _ in range(5)]
    assert got_a == got_b == [1, 2, 3, 4, 5]
    assert a.get(0) is None


def test_slow_subscriber_loses_its_oldest_events_and_counts_them():
    bus = EventBus(default_queue_size=4)
    slow = bus.subscribe("slow")
    fast = bus.subscribe("fast", queue_size=100)
    for i in range(10):
        bus.publish(_event(i))
    assert slow.dropped == 6 and slow.queued == 4
    assert [slow.get(0).start_sample for _ in range(4)] == [6, 7, 8, 9]
    assert fast.dropped == 0 and fast.queued == 10
    assert {"name": "slow", "queued": 0, "dropped": 6} in bus.stats()


def test_publish_never_blocks_on_a_subscriber_that_never_reads():
    bus = EventBus(default_queue_size=2)
    bus.subscribe("never-reads")
    done = threading.Event()

    def publish_many():
        for i in range(20_000):
            bus.publish(_event(i))
        done.set()

    t = threading.Thread(target=publish_many)
    t.start()
    t.join(30)
    assert done.is_set()
    assert bus.stats()[0]["dropped"] == 20_000 - 2


def test_predicate_filters_and_a_broken_predicate_does_not_stop_publishing():
    bus = EventBus()
    only_no = bus.subscribe("no", predicate=lambda e: e.keyword == "no")
    broken = bus.subscribe("broken", predicate=lambda e: 1 / 0)
    everyone = bus.subscribe("all")
    bus.publish(_event(0, "yes"))
    bus.publish(_event(1, "no"))
    assert only_no.get(0).keyword == "no" and only_no.get(0) is None
    assert broken.get(0) is None
    assert everyone.queued == 2


def test_close_ends_every_subscription_and_wakes_waiting_readers():
    bus = EventBus()
    sub = bus.subscribe("waiter")
    bus.publish(_event(1))
    results = []

    def consume():
        results.extend(e.start_sample for e in sub)   # ends when the bus closes

    t = threading.Thread(target=consume)
    t.start()
    bus.close()
    t.join(5)
    assert not t.is_alive()
    assert results == [1]
    assert sub.closed
    assert bus.subscribe("late").closed
    assert bus.stats() == []


def test_unsubscribe_removes_from_stats():
    bus = EventBus()
    sub = bus.subscribe("x")
    assert len(bus) == 1
    sub.close()
    assert len(bus) == 0 and sub.get(0) is None
