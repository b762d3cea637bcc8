"""In-flight tracking: a window of PUBLISHes awaiting their PUBACK, matched by packet id (mid).

Three threads meet here: a worker thread seals and publishes (blocking on the window, never the event
loop), paho's network thread reports each PUBACK (`acked`), and the event loop awaits the whole batch.
The loop is woken once per batch, not once per message: a cross-thread wake-up costs more than a PUBACK.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

REJECTED = -1  # never sent: refused by our own checks (topic, size)


def call_threadsafe(loop: asyncio.AbstractEventLoop, callback: Callable[[], None]) -> None:
    """From another thread; a closed loop means nobody waits any more."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(callback)


@dataclass(frozen=True, slots=True)
class Result:
    code: int  # the PUBACK's MQTT 5 reason code (always 0 with 3.1.1), or REJECTED
    reason: str

    @property
    def delivered(self) -> bool:
        return 0 <= self.code < 0x80  # 0x10 "no matching subscribers" is a success too


class Flight:
    """One batch: a result per message, complete when every message has one (or aborted on an error)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self.results: list[Result | None] = [None] * size
        self.error: BaseException | None = None
        self.progress = time.monotonic()  # last time a result came in (for the ack timeout)
        self._remaining = size
        self._lock = threading.Lock()
        self._loop = loop
        self._done = loop.create_future()
        if size == 0:
            self._done.set_result(None)

    def settle(self, index: int, result: Result) -> None:
        """Any thread. The first result for an index wins (a late duplicate PUBACK changes nothing)."""
        with self._lock:
            if self.results[index] is not None:
                return
            self.results[index] = result
            self._remaining -= 1
            self.progress = time.monotonic()
            finished = self._remaining == 0
        if finished:
            self._wake()

    def abort(self, error: BaseException) -> None:
        with self._lock:
            if self.error is None:
                self.error = error
        self._wake()

    @property
    def aborted(self) -> bool:
        return self.error is not None

    def confirmed_prefix(self) -> int:
        """How many leading messages have a final result: those may be acked even if the batch failed."""
        with self._lock:
            for count, result in enumerate(self.results):
                if result is None:
                    return count
            return len(self.results)

    async def wait(self, ack_timeout: float) -> list[Result]:
        """Every result, in order; raises the abort error, or TimeoutError after `ack_timeout` seconds
        without any PUBACK (a broker that keeps the connection but stopped answering)."""
        while True:
            done, _ = await asyncio.wait({self._done}, timeout=min(1.0, ack_timeout))
            if self.error is not None:
                raise self.error
            if done:
                return [r for r in self.results if r is not None]
            silent = time.monotonic() - self.progress
            if silent > ack_timeout:
                error = TimeoutError(f"no PUBACK from the broker for {silent:.0f} s")
                self.abort(error)
                raise error

    def _wake(self) -> None:
        def resolve() -> None:
            if not self._done.done():
                self._done.set_result(None)

        call_threadsafe(self._loop, resolve)


class Tracker:
    """Packet id → (flight, index) of every message in flight on one connection, and the window."""

    def __init__(self, window: int) -> None:
        self._window = threading.Semaphore(window)
        self._lock = threading.Lock()
        self._pending: dict[int, tuple[Flight, int]] = {}
        # A PUBACK can overtake the publishing thread (paho's thread writes and reads while publish()
        # returns): it waits here until expect() registers its mid.
        self._early: dict[int, Result] = {}
        self._error: BaseException | None = None

    def acquire(self, flight: Flight) -> bool:
        """Worker thread: wait for room in the window; False once the flight or connection failed."""
        while not self._window.acquire(timeout=0.1):
            if flight.aborted or self._error is not None:
                return False
        if self._error is not None:
            flight.abort(self._error)
            return False
        return not flight.aborted

    def release(self) -> None:
        """For a slot acquired but not used (publish() refused the message)."""
        self._window.release()

    def expect(self, mid: int, flight: Flight, index: int) -> None:
        with self._lock:
            early = self._early.pop(mid, None)
            if early is None:
                self._pending[mid] = (flight, index)
            error = self._error
        if early is not None:
            flight.settle(index, early)
        elif error is not None:
            flight.abort(error)

    def acked(self, mid: int, result: Result) -> None:
        """paho's thread (on_publish)."""
        with self._lock:
            entry = self._pending.pop(mid, None)
            if entry is None:
                self._early[mid] = result
        self._window.release()
        if entry is not None:
            entry[0].settle(entry[1], result)

    def fail(self, error: BaseException) -> None:
        """The connection is gone: every message in flight fails, and so does every later one."""
        with self._lock:
            self._error = self._error or error
            flights = {flight for flight, _ in self._pending.values()}
            self._pending.clear()
        for flight in flights:
            flight.abort(error)
        self._window.release()  # wakes a worker waiting for room, which then sees the error
