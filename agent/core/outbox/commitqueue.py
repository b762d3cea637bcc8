"""The hand-off between appending threads and the single writer thread (group commit)."""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable

from .model import OutboxClosed, Record

# One validated reading: (stream, payload, created, quota size).
Item = tuple[str, bytes, float, int]


class Request:
    """One append call (or one chunk of append_many); committed all-or-nothing in a single transaction."""

    __slots__ = ("_notify", "error", "items", "largest", "nbytes", "records")

    def __init__(self, items: list[Item], notify: Callable[[], None]) -> None:
        self.items = items
        self.nbytes = sum(item[3] for item in items)
        self.largest = max(item[3] for item in items)
        self.records: list[Record] = []
        self.error: BaseException | None = None
        self._notify = notify

    def finish(self, records: list[Record] | None = None, error: BaseException | None = None) -> None:
        self.records = records or []
        self.error = error
        # RuntimeError: the event loop of an async caller was closed meanwhile; nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self._notify()

    def result(self) -> list[Record]:
        if self.error is not None:
            raise self.error
        return self.records


class CommitQueue:
    """Bounded FIFO of requests waiting for the writer.

    The bounds keep memory flat when the disk is slower than the producers: appenders wait for room
    (backpressure) instead of piling up readings in memory.
    """

    def __init__(self, max_records: int, max_bytes: int) -> None:
        lock = threading.Lock()
        self._not_empty = threading.Condition(lock)
        self._not_full = threading.Condition(lock)
        self._pending: deque[Request] = deque()
        self._max_records = max_records
        self._max_bytes = max_bytes
        self._records = 0
        self._bytes = 0
        self._closed = False

    def put(self, request: Request, *, block: bool = True) -> bool:
        """Queue a request; False only when ``block`` is False and there is no room now."""
        with self._not_full:
            while not self._closed and not self._has_room(request):
                if not block:
                    return False
                self._not_full.wait()
            if self._closed:
                raise OutboxClosed("outbox is closed")
            self._pending.append(request)
            self._records += len(request.items)
            self._bytes += request.nbytes
            self._not_empty.notify()
        return True

    def take(self, max_records: int, max_bytes: int) -> list[Request]:
        """Wait for work; return the oldest requests that fit one transaction (at least one).

        An empty list means the queue is closed and drained.
        """
        with self._not_empty:
            while not self._pending and not self._closed:
                self._not_empty.wait()
            batch: list[Request] = []
            records = nbytes = 0
            while self._pending:
                head = self._pending[0]
                if batch and (records + len(head.items) > max_records or nbytes + head.nbytes > max_bytes):
                    break
                batch.append(self._pending.popleft())
                records += len(head.items)
                nbytes += head.nbytes
            self._records -= records
            self._bytes -= nbytes
            self._not_full.notify_all()
        return batch

    def close(self) -> None:
        """Refuse new requests; those already queued are still handed to the writer."""
        with self._not_empty:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()

    def _has_room(self, request: Request) -> bool:
        # An empty queue admits anything, so a request larger than the bounds still gets through alone.
        if not self._pending:
            return True
        return (
            self._records + len(request.items) <= self._max_records
            and self._bytes + request.nbytes <= self._max_bytes
        )
