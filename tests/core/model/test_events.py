"""Change events: their order and content, and their fan-out to fast, slow, lossy and lossless subscribers."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from agent.core.model import (
    ResourceKind,
    ResourceSpec,
    ValueMode,
    value_type,
)
from agent.core.model.events import EventBus, EventType, ModelEvent, Subscription
from agent.core.model.model import Model

DOUBLE = ResourceSpec(value_type("double"), ResourceKind.SENSOR, ValueMode.UPDATABLE)
JOIN = 10.0  # generous bound for a thread that should finish at once; only reached when a test fails


def event(seq: int, resource: str = "r") -> ModelEvent:
    return ModelEvent(EventType.VALUE_UPDATED, seq, "p", "s", resource, value=float(seq))


def start(target, *args) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


# --- the events themselves -------------------------------------------------------------------------


def test_event_types_know_which_are_lifecycle_events() -> None:
    lifecycle = {t for t in EventType if t.is_lifecycle}
    assert lifecycle == set(EventType) - {EventType.VALUE_UPDATED, EventType.METADATA_UPDATED}


def test_event_path_skips_what_is_absent() -> None:
    assert ModelEvent(EventType.PROVIDER_APPEARED, 1, "truck").path == "truck"
    assert ModelEvent(EventType.SERVICE_APPEARED, 2, "truck", "gps").path == "truck/gps"
    assert ModelEvent(EventType.VALUE_UPDATED, 3, "truck", "gps", "lat").path == "truck/gps/lat"


def test_events_are_immutable() -> None:
    with pytest.raises(AttributeError):
        event(1).value = 2.0  # type: ignore[misc]


def test_the_model_numbers_its_events_without_gaps_and_reports_old_values() -> None:
    model = Model(clock=lambda: 1000.0)
    with model.subscribe("all") as sub:
        model.ensure_resource("p", "s", "r", DOUBLE)
        model.update("p", "s", "r", 1, timestamp=5.0)
        model.update("p", "s", "r", 2.5)
        model.update_metadata("p", "s", "r", {"unit": "m"})
        model.remove_resource("p", "s", "r")
        events = sub.get_batch(timeout=0)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert [(e.type, e.path) for e in events] == [
        (EventType.PROVIDER_APPEARED, "p"),
        (EventType.SERVICE_APPEARED, "p/admin"),
        (EventType.RESOURCE_APPEARED, "p/admin/friendlyName"),
        (EventType.RESOURCE_APPEARED, "p/admin/description"),
        (EventType.RESOURCE_APPEARED, "p/admin/location"),
        (EventType.SERVICE_APPEARED, "p/s"),
        (EventType.RESOURCE_APPEARED, "p/s/r"),
        (EventType.VALUE_UPDATED, "p/s/r"),
        (EventType.VALUE_UPDATED, "p/s/r"),
        (EventType.METADATA_UPDATED, "p/s/r"),
        (EventType.RESOURCE_DISAPPEARED, "p/s/r"),
    ]
    first, second = events[7], events[8]
    assert (first.value, first.old_value, first.timestamp, first.kind) == (1.0, None, 5.0, "SENSOR")
    assert (second.value, second.old_value, second.timestamp, second.source) == (2.5, 1.0, 1000.0, "driver")
    assert dict(events[9].metadata) == {"unit": "m"} and events[9].timestamp == 1000.0
    assert events[2].value == "p" and events[2].kind is ResourceKind.PROPERTY


def test_a_refused_change_emits_nothing_and_leaves_no_gap() -> None:
    model = Model()
    model.ensure_resource("p", "s", "r", DOUBLE)
    with model.subscribe("all") as sub:
        with pytest.raises(ValueError):
            model.update("p", "s", "r", "not a number")
        with pytest.raises(ValueError):
            model.add_provider("q", location={"type": "Point", "coordinates": [0, 100]})
        model.update("p", "s", "r", 1.0)
        events = sub.get_batch(timeout=0)
    assert [(e.type, e.value) for e in events] == [(EventType.VALUE_UPDATED, 1.0)]
    assert events[0].seq == 8  # 7 events created p; the refused changes used no number


# --- subscriptions ---------------------------------------------------------------------------------


def test_a_subscription_needs_room() -> None:
    with pytest.raises(ValueError, match="at least one event"):
        EventBus().subscribe("x", maxsize=0)


def test_every_subscriber_gets_every_event_in_order() -> None:
    bus = EventBus()
    a, b = bus.subscribe("a"), bus.subscribe("b")
    for seq in range(1, 6):
        bus.publish(event(seq))
    assert [e.seq for e in a.get_batch(timeout=0)] == [1, 2, 3, 4, 5]
    assert [e.seq for e in b.get_batch(timeout=0)] == [1, 2, 3, 4, 5]
    assert (a.delivered, a.dropped, a.pending) == (5, 0, 0)


def test_filters_select_events_per_subscriber() -> None:
    bus = EventBus()
    only_x = bus.subscribe("x", filter=lambda e: e.resource == "x")
    everything = bus.subscribe("all")
    for seq, resource in enumerate(["x", "y", "x", "z"], start=1):
        bus.publish(event(seq, resource))
    assert [e.seq for e in only_x.get_batch(timeout=0)] == [1, 3]
    assert [e.seq for e in everything.get_batch(timeout=0)] == [1, 2, 3, 4]
    assert only_x.dropped == 0  # filtered out is not dropped


def test_a_raising_filter_breaks_neither_the_publisher_nor_the_others(caplog) -> None:
    bus = EventBus()

    def broken(e: ModelEvent) -> bool:
        raise RuntimeError("bug in a filter")

    before = bus.subscribe("before")
    bus.subscribe("broken", filter=broken)
    after = bus.subscribe("after")
    with caplog.at_level(logging.ERROR, logger="agent.model.events"):
        bus.publish(event(1))
        bus.publish(event(2))
    assert [e.seq for e in before.get_batch(timeout=0)] == [1, 2]
    assert [e.seq for e in after.get_batch(timeout=0)] == [1, 2]
    assert caplog.messages == ["subscriber broken failed on an event; it is skipped"] * 2


def test_a_raising_filter_does_not_fail_the_models_writer() -> None:
    model = Model()
    model.ensure_resource("p", "s", "r", DOUBLE)
    model.subscribe("broken", filter=lambda e: 1 / 0)  # type: ignore[arg-type, return-value]
    good = model.subscribe("good", filter=lambda e: e.type is EventType.VALUE_UPDATED)
    assert model.update("p", "s", "r", 3.0).value == 3.0
    assert [e.value for e in good.get_batch(timeout=0)] == [3.0]


def test_a_slow_lossy_subscriber_loses_its_oldest_events_and_counts_them() -> None:
    bus = EventBus()
    slow = bus.subscribe("slow", maxsize=3)
    fast = bus.subscribe("fast", maxsize=3)
    received = []
    for seq in range(1, 11):
        bus.publish(event(seq))
        received.append(fast.get(timeout=0).seq)  # type: ignore[union-attr]
    assert received == list(range(1, 11))
    assert (fast.dropped, fast.pending) == (0, 0)
    assert (slow.dropped, slow.pending) == (7, 3)
    assert [e.seq for e in slow.get_batch(timeout=0)] == [8, 9, 10]


def test_a_fast_consumer_on_its_own_thread_receives_everything_while_a_slow_one_drops() -> None:
    model = Model()
    model.ensure_resource("p", "s", "r", DOUBLE)
    only_values = {"filter": lambda e: e.type is EventType.VALUE_UPDATED}
    slow = model.subscribe("slow", maxsize=5, **only_values)
    fast = model.subscribe("fast", maxsize=5, lossless=True, block_timeout=JOIN, **only_values)
    got: list[float] = []
    consumer = start(lambda: got.extend(e.value for e in fast))
    for i in range(500):
        model.update("p", "s", "r", i)
    fast.close()
    consumer.join(JOIN)
    assert got == [float(i) for i in range(500)] and fast.dropped == 0
    assert slow.pending == 5 and slow.dropped == 495
    assert [e.value for e in slow.get_batch(timeout=0)] == [495.0, 496.0, 497.0, 498.0, 499.0]


def test_a_lossless_subscriber_makes_the_producer_wait_until_it_reads() -> None:
    bus = EventBus()
    offering_second = threading.Event()
    sub = bus.subscribe(
        "recorder",
        maxsize=1,
        lossless=True,
        block_timeout=60,
        filter=lambda e: e.seq != 2 or offering_second.set() or True,
    )
    bus.publish(event(1))
    published = threading.Event()
    producer = start(lambda: (bus.publish(event(2)), published.set()))
    assert offering_second.wait(JOIN)
    # The producer is now inside publish with a full queue: it must wait, not drop.
    assert not published.wait(0.05)
    assert (sub.pending, sub.dropped) == (1, 0)
    assert sub.get(timeout=0).seq == 1  # type: ignore[union-attr]
    assert published.wait(JOIN)  # room was made: the producer went on
    producer.join(JOIN)
    assert sub.get(timeout=0).seq == 2  # type: ignore[union-attr]
    assert (sub.delivered, sub.dropped) == (2, 0)


def test_a_stalled_lossless_subscriber_drops_after_its_timeout_and_says_so(caplog) -> None:
    bus = EventBus()
    sub = bus.subscribe("recorder", maxsize=1, lossless=True, block_timeout=0.01)
    other = bus.subscribe("other")
    with caplog.at_level(logging.ERROR, logger="agent.model.events"):
        for seq in (1, 2, 3):
            bus.publish(event(seq))
    assert sub.dropped == 2
    assert [e.seq for e in sub.get_batch(timeout=0)] == [1]  # lossless keeps the oldest, unlike lossy
    assert [e.seq for e in other.get_batch(timeout=0)] == [1, 2, 3]
    assert caplog.messages == ["lossless subscriber recorder stalled for 0.0s: event p/s/r dropped"] * 2


def test_closing_releases_a_waiting_lossless_producer() -> None:
    bus = EventBus()
    offering = threading.Event()
    sub = bus.subscribe(
        "rec", maxsize=1, lossless=True, block_timeout=60, filter=lambda e: offering.set() or True
    )
    bus.publish(event(1))
    offering.clear()
    producer = start(bus.publish, event(2))
    assert offering.wait(JOIN)
    sub.close()
    producer.join(JOIN)
    assert not producer.is_alive()
    assert sub.dropped == 0  # closed, not stalled: nothing is counted as lost
    assert sub.get() is not None and sub.get() is None  # what was queued, then the end


def test_get_waits_then_times_out_with_none() -> None:
    sub = EventBus().subscribe("x")
    assert sub.get(timeout=0.01) is None
    assert sub.get_batch(timeout=0.01) == []


def test_get_batch_honours_its_limit() -> None:
    bus = EventBus()
    sub = bus.subscribe("x")
    for seq in range(1, 8):
        bus.publish(event(seq))
    assert [e.seq for e in sub.get_batch(limit=3, timeout=0)] == [1, 2, 3]
    assert sub.pending == 4 and sub.delivered == 3


def test_a_blocked_get_is_woken_by_an_event_from_another_thread() -> None:
    bus = EventBus()
    sub = bus.subscribe("x")
    result: list[ModelEvent | None] = []
    reader = start(lambda: result.append(sub.get(timeout=JOIN)))
    bus.publish(event(1))
    reader.join(JOIN)
    assert [e.seq for e in result] == [1]  # type: ignore[union-attr]


def test_close_wakes_a_waiting_get_and_ends_iteration() -> None:
    bus = EventBus()
    sub = bus.subscribe("x")
    waiting = threading.Event()
    result: list[object] = []

    def read() -> None:
        waiting.set()
        result.append(sub.get())  # no timeout: only close() can end this wait

    reader = start(read)
    assert waiting.wait(JOIN)
    sub.close()
    reader.join(JOIN)
    assert not reader.is_alive() and result == [None]
    assert sub.closed


def test_after_close_queued_events_are_still_read_then_nothing_more_arrives() -> None:
    bus = EventBus()
    sub = bus.subscribe("x")
    bus.publish(event(1))
    bus.publish(event(2))
    sub.close()
    bus.publish(event(3))
    assert sub not in bus.subscriptions
    assert [e.seq for e in sub] == [1, 2]
    sub._offer(event(4))  # a publisher still holding the old tuple of subscriptions
    assert sub.pending == 0


def test_a_subscription_is_a_context_manager_that_closes() -> None:
    bus = EventBus()
    with bus.subscribe("x") as sub:
        assert bus.subscriptions == (sub,)
    assert sub.closed and bus.subscriptions == ()


def test_model_subscribe_passes_its_options_through() -> None:
    model = Model()
    sub = model.subscribe("rec", maxsize=7, lossless=True, block_timeout=1.5)
    assert isinstance(sub, Subscription)
    assert (sub.name, sub.maxsize, sub.lossless, sub.block_timeout) == ("rec", 7, True, 1.5)
    assert model.bus.subscriptions == (sub,)


# --- asyncio consumers -----------------------------------------------------------------------------


def test_aget_returns_what_is_already_queued() -> None:
    bus = EventBus()
    sub = bus.subscribe("x")
    bus.publish(event(1))
    assert asyncio.run(sub.aget()).seq == 1  # type: ignore[union-attr]


def test_aget_is_woken_by_a_publisher_on_another_thread() -> None:
    bus = EventBus()
    sub = bus.subscribe("x")

    async def consume() -> list[int]:
        seqs = []
        # The first aget() registers the loop before the producer starts, so it must be woken.
        first = asyncio.ensure_future(sub.aget())
        await asyncio.sleep(0)
        producer = start(lambda: [bus.publish(event(seq)) for seq in range(1, 51)])
        seqs.append((await asyncio.wait_for(first, JOIN)).seq)
        while len(seqs) < 50:
            seqs.append((await asyncio.wait_for(sub.aget(), JOIN)).seq)
        producer.join(JOIN)
        return seqs

    assert asyncio.run(consume()) == list(range(1, 51))


def test_close_wakes_a_waiting_aget() -> None:
    bus = EventBus()
    sub = bus.subscribe("x")

    async def consume() -> object:
        waiter = asyncio.ensure_future(sub.aget())
        await asyncio.sleep(0)  # aget() is now waiting on its flag
        assert not waiter.done()
        closer = start(sub.close)
        result = await asyncio.wait_for(waiter, JOIN)
        closer.join(JOIN)
        return result

    assert asyncio.run(consume()) is None


def test_aget_from_a_second_event_loop_still_works() -> None:
    bus = EventBus()
    sub = bus.subscribe("x")
    bus.publish(event(1))
    assert asyncio.run(sub.aget()).seq == 1  # type: ignore[union-attr]

    async def wait_for_one() -> ModelEvent | None:
        waiter = asyncio.ensure_future(sub.aget())
        await asyncio.sleep(0)
        start(bus.publish, event(2))
        return await asyncio.wait_for(waiter, JOIN)

    assert asyncio.run(wait_for_one()).seq == 2  # type: ignore[union-attr]
