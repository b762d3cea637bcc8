"""Model change events and their fan-out to subscribers.

Every subscriber has its own bounded queue, filled by the thread that changed the model. A lossy
subscriber (a web page, an SSE stream) that falls behind loses its oldest events, counted in `dropped`, and
never slows anyone else down. A lossless subscriber (the recorder that feeds the durable outbox) applies
backpressure instead: the writer waits for room, up to `block_timeout`, because losing a reading there would
lose it for good; if even that runs out the event is dropped, counted and logged as an error.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

log = logging.getLogger("agent.model.events")


class EventType(StrEnum):
    PROVIDER_APPEARED = "PROVIDER_APPEARED"
    PROVIDER_DISAPPEARED = "PROVIDER_DISAPPEARED"
    SERVICE_APPEARED = "SERVICE_APPEARED"
    SERVICE_DISAPPEARED = "SERVICE_DISAPPEARED"
    RESOURCE_APPEARED = "RESOURCE_APPEARED"
    RESOURCE_DISAPPEARED = "RESOURCE_DISAPPEARED"
    VALUE_UPDATED = "VALUE_UPDATED"
    METADATA_UPDATED = "METADATA_UPDATED"

    @property
    def is_lifecycle(self) -> bool:
        return self.name.endswith(("APPEARED", "DISAPPEARED"))


@dataclass(frozen=True, slots=True)
class ModelEvent:
    type: EventType
    seq: int  # global, gap-free order of changes in this model
    provider: str
    service: str | None = None
    resource: str | None = None
    value: Any = None
    old_value: Any = None
    timestamp: float | None = None
    metadata: Any = None  # a read-only mapping for VALUE/METADATA events
    kind: str | None = None  # the resource kind (SENSOR, ...) for resource events
    source: str = "driver"  # who made the change: "driver", "declaration", "northbound"

    @property
    def path(self) -> str:
        return "/".join(part for part in (self.provider, self.service, self.resource) if part)


EventFilter = Callable[[ModelEvent], bool]


@dataclass(eq=False)
class Subscription:
    """One subscriber's queue. Read with get() from a thread or aget() from asyncio."""

    name: str
    maxsize: int = 1000
    lossless: bool = False
    block_timeout: float = 10.0
    filter: EventFilter | None = None
    dropped: int = 0
    delivered: int = 0
    _queue: collections.deque[ModelEvent] = field(default_factory=collections.deque, repr=False)
    _cond: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _closed: bool = False
    _bus: EventBus | None = field(default=None, repr=False)
    _waker: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.maxsize < 1:
            raise ValueError("a subscription needs room for at least one event")

    # --- producer side (called by EventBus under its publish order) -------------------------------

    def _offer(self, event: ModelEvent) -> None:
        if self.filter is not None and not self.filter(event):
            return
        with self._cond:
            if self._closed:
                return
            if len(self._queue) >= self.maxsize:
                if self.lossless:
                    deadline = time.monotonic() + self.block_timeout
                    while len(self._queue) >= self.maxsize and not self._closed:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        self._cond.wait(left)
                    if self._closed:
                        return
                if len(self._queue) >= self.maxsize:
                    if self.lossless:
                        self.dropped += 1
                        log.error(
                            "lossless subscriber %s stalled for %.1fs: event %s dropped",
                            self.name,
                            self.block_timeout,
                            event.path,
                        )
                        return
                    self._queue.popleft()
                    self.dropped += 1
            was_empty = not self._queue
            self._queue.append(event)
            self._cond.notify_all()
            waker = self._waker
        if was_empty and waker is not None:
            loop, flag = waker
            # RuntimeError: the consumer's loop is closed; it will never read again.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(flag.set)

    # --- consumer side -----------------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> ModelEvent | None:
        """The next event, or None on timeout or once closed and empty."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._queue or self._closed, timeout):
                return None
            return self._take()

    def get_batch(self, limit: int = 1000, timeout: float | None = None) -> list[ModelEvent]:
        """Up to `limit` events, waiting at most `timeout` for the first one."""
        with self._cond:
            self._cond.wait_for(lambda: self._queue or self._closed, timeout)
            batch = []
            while self._queue and len(batch) < limit:
                batch.append(self._take())
            return batch

    async def aget(self) -> ModelEvent | None:
        """The next event for an asyncio consumer; None once closed and empty."""
        flag = self._async_flag()
        while True:
            with self._cond:
                if self._queue or self._closed:
                    return self._take()
                flag.clear()
            await flag.wait()

    def _async_flag(self) -> asyncio.Event:
        loop = asyncio.get_running_loop()
        with self._cond:
            if self._waker is None or self._waker[0] is not loop:
                self._waker = (loop, asyncio.Event())
            return self._waker[1]

    def _take(self) -> ModelEvent | None:
        if not self._queue:
            return None
        event = self._queue.popleft()
        self.delivered += 1
        self._cond.notify_all()  # a blocked lossless producer may go on
        return event

    def __iter__(self) -> Iterator[ModelEvent]:
        while (event := self.get()) is not None:
            yield event

    @property
    def pending(self) -> int:
        return len(self._queue)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stops delivery; readers get what is queued, then None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            waker = self._waker
        if waker is not None:
            with contextlib.suppress(RuntimeError):
                waker[0].call_soon_threadsafe(waker[1].set)
        if self._bus is not None:
            self._bus._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventBus:
    """Fans events out to subscriptions in the order they are published."""

    def __init__(self) -> None:
        self._subscriptions: tuple[Subscription, ...] = ()
        self._lock = threading.Lock()

    def subscribe(
        self,
        name: str,
        *,
        maxsize: int = 1000,
        lossless: bool = False,
        block_timeout: float = 10.0,
        filter: EventFilter | None = None,
    ) -> Subscription:
        subscription = Subscription(
            name=name, maxsize=maxsize, lossless=lossless, block_timeout=block_timeout, filter=filter
        )
        subscription._bus = self
        with self._lock:
            self._subscriptions = (*self._subscriptions, subscription)
        return subscription

    def _remove(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions = tuple(s for s in self._subscriptions if s is not subscription)

    def publish(self, event: ModelEvent) -> None:
        for subscription in self._subscriptions:  # an immutable tuple: no lock needed to read it
            try:
                subscription._offer(event)
            except Exception:  # a broken filter must not stop delivery to the others
                log.exception("subscriber %s failed on an event; it is skipped", subscription.name)

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return self._subscriptions
