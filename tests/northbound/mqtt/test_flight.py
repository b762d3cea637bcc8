"""The in-flight window and PUBACK matching, without a broker."""

from __future__ import annotations

import asyncio
import threading

import pytest

from agent.northbound.mqtt.flight import REJECTED, Flight, Result, Tracker

OK = Result(0, "Success")


async def test_an_ack_that_overtakes_registration_is_not_lost() -> None:
    flight = Flight(asyncio.get_running_loop(), 2)
    tracker = Tracker(10)
    assert tracker.acquire(flight) and tracker.acquire(flight)
    tracker.acked(1, OK)  # PUBACK before expect(): paho's thread was faster
    tracker.expect(1, flight, 0)
    tracker.expect(2, flight, 1)
    tracker.acked(2, Result(0x10, "No matching subscribers"))
    results = await flight.wait(1)
    assert all(r.delivered for r in results)


async def test_the_window_blocks_until_an_ack_and_a_failure_releases_it() -> None:
    flight = Flight(asyncio.get_running_loop(), 3)
    tracker = Tracker(1)
    assert tracker.acquire(flight)
    tracker.expect(1, flight, 0)
    got: list[bool] = []
    worker = threading.Thread(target=lambda: got.append(tracker.acquire(flight)))
    worker.start()
    await asyncio.sleep(0.2)
    assert got == []  # still waiting for room
    tracker.acked(1, OK)
    worker.join(2)
    assert got == [True]
    tracker.expect(2, flight, 1)
    tracker.fail(ConnectionError("gone"))
    assert tracker.acquire(flight) is False
    with pytest.raises(ConnectionError):
        await flight.wait(1)
    assert flight.confirmed_prefix() == 1


async def test_silence_times_out() -> None:
    flight = Flight(asyncio.get_running_loop(), 1)
    with pytest.raises(TimeoutError):
        await flight.wait(0.2)


def test_rejected_is_not_delivered() -> None:
    assert not Result(REJECTED, "x").delivered and not Result(0x87, "Not authorized").delivered
