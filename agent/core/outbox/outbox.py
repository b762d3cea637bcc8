"""Durable outbox: a reading is on disk before append() returns and stays until every sink confirmed it.

Architecture:
* appends from any thread (or event loop) are validated by the caller, queued in a bounded
  CommitQueue, and committed by one writer thread that takes everything pending and commits it in a
  single transaction (group commit): with synchronous=FULL the fsync per commit dominates, so batching
  is what makes 10k+ durable readings/s possible;
* ack, register and unregister share the writer connection under the store lock (store.py);
* peek, sinks and stats read through a second connection (reader.py), which in WAL mode never waits for
  the writer's transaction.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Literal

from .commitqueue import CommitQueue, Item, Request
from .model import MAX_STREAM_LEN, RECORD_OVERHEAD, OutboxError, OutboxStats, Record
from .reader import Reader
from .schema import claim, connect, open_database
from .store import Quota, Store

# Bytes of readings per transaction (and per append_many chunk): bounds the memory a group commit holds.
_TXN_BYTES = 32 * 2**20


class Outbox:
    """Thread-safe durable outbox on a SQLite file. See the package docstring for the guarantees."""

    def __init__(
        self,
        path: str | Path,
        *,
        max_bytes: int = 256 * 2**20,
        max_records: int | None = None,
        on_full: Literal["refuse", "evict_oldest"] = "evict_oldest",
        max_batch: int = 10_000,
        max_record_bytes: int = 2**20,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
    ) -> None:
        _check_options(max_bytes, max_records, on_full, max_batch, max_record_bytes, synchronous)
        self.path = Path(path)
        self._max_batch = max_batch
        self._max_record_bytes = max_record_bytes
        self._lock_fd = claim(self.path)
        try:
            self._open(synchronous, Quota(max_bytes, max_records, on_full))
        except BaseException:
            os.close(self._lock_fd)
            raise
        # Up to two transactions' worth may wait while one commits; beyond that appenders wait (backpressure).
        self._queue = CommitQueue(max_records=2 * max_batch, max_bytes=2 * _TXN_BYTES)
        self._close_lock = threading.Lock()
        # Publishers wait on this when they have caught up, instead of polling the database.
        self._appended = threading.Condition()
        self._generation = 0
        self._writer = threading.Thread(target=self._write_loop, name="outbox-writer", daemon=True)
        self._writer.start()

    # -- sinks -------------------------------------------------------------------------------

    def register_sink(self, name: str) -> None:
        """Add a sink (idempotent, persisted); a new sink starts at the oldest retained record."""
        if not isinstance(name, str):
            raise TypeError(f"sink name must be str, not {type(name).__name__}")
        if not name or len(name) > MAX_STREAM_LEN:
            raise ValueError(f"sink name must be 1..{MAX_STREAM_LEN} characters")
        self._store.register_sink(name)

    def unregister_sink(self, name: str) -> None:
        """Forget a sink, so its cursor no longer holds records back. KeyError if unknown."""
        self._store.unregister_sink(name)

    def sinks(self) -> list[str]:
        return self._reader.sinks()

    # -- appends -----------------------------------------------------------------------------

    def append(self, stream: str, payload: bytes) -> Record:
        """Store one reading; returns once it is committed to disk."""
        return self._submit([self._item(stream, payload)])[0]

    def append_many(self, items: Iterable[tuple[str, bytes]]) -> list[Record]:
        """Store readings in order; returns once all are committed.

        Up to ``max_batch`` readings (and 32 MiB) are committed atomically in one transaction. A larger
        input is consumed lazily in chunks of that size, each atomic: if a later chunk fails, the raised
        OutboxError carries the records of the chunks already committed in ``committed``.
        """
        committed: list[Record] = []
        for chunk in self._chunks(items):
            try:
                committed.extend(self._submit(chunk))
            except OutboxError as exc:
                exc.committed = tuple(committed)
                raise
        return committed

    async def append_async(self, stream: str, payload: bytes) -> Record:
        """Like append(), without blocking the event loop.

        The writer thread completes an asyncio future, so no executor thread is held per pending append.
        Cancelling the awaiting task does not withdraw a reading that was already queued.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[Record]] = loop.create_future()
        request = Request(
            [self._item(stream, payload)], lambda: loop.call_soon_threadsafe(_settle, future, request)
        )
        if not self._queue.put(request, block=False):
            # Backpressure: the queue is full, so wait for room in a worker thread, not on the loop.
            await loop.run_in_executor(None, self._queue.put, request)
        return (await future)[0]

    # -- consuming ---------------------------------------------------------------------------

    def peek(self, sink: str, limit: int = 100) -> list[Record]:
        """The sink's oldest unconfirmed records, in id order; KeyError for an unknown sink."""
        if not isinstance(limit, int) or limit < 1:
            raise ValueError("limit must be a positive int")
        return self._reader.peek(sink, limit)

    def ack(self, sink: str, up_to_id: int) -> int:
        """Confirm every record with id <= up_to_id for the sink; returns how many records were deleted.

        The cursor only moves forward (an older id is a no-op). An id beyond the last one ever issued is
        rejected with ValueError rather than clamped: it can only come from another database (e.g. one
        set aside as corrupt), and clamping would silently skip records.
        """
        if not isinstance(up_to_id, int) or isinstance(up_to_id, bool):
            raise TypeError(f"up_to_id must be int, not {type(up_to_id).__name__}")
        return self._store.ack(sink, up_to_id)

    def stats(self) -> OutboxStats:
        """Counters and per-sink depth; cheap (index seeks only), suitable for every metrics scrape."""
        return self._reader.stats(self.recovered_from)

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self, timeout: float = 10.0) -> None:
        """Commit the appends already queued, stop the writer, checkpoint the WAL and close.

        Idempotent. Appends queued after this point raise OutboxClosed. If the writer cannot finish
        within ``timeout``, OutboxError is raised and close() may be called again.
        """
        with self._close_lock:
            self._queue.close()
            self._writer.join(timeout)
            if self._writer.is_alive():
                raise OutboxError(f"outbox writer did not finish within {timeout} s; call close() again")
            self._reader.close()  # first, so that no read snapshot blocks the final checkpoint
            self._store.close()
            if self._lock_fd >= 0:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = -1

    def __enter__(self) -> Outbox:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Outbox({str(self.path)!r})"

    # -- internals ---------------------------------------------------------------------------

    def _open(self, synchronous: str, quota: Quota) -> None:
        conn, self.recovered_from = open_database(self.path, synchronous)
        try:
            self._store = Store(conn, quota)
            self._reader = Reader(connect(self.path, synchronous), self._store.epoch)
        except BaseException:
            conn.close()
            raise

    def _write_loop(self) -> None:
        while batch := self._queue.take(self._max_batch, _TXN_BYTES):
            self._store.commit_appends(batch)
            with self._appended:
                self._generation += 1
                self._appended.notify_all()
            # Yield the GIL so that the appenders just woken can queue their next readings before the
            # next take(): without it the writer grabs a half-empty queue and the batch size halves.
            time.sleep(0)

    @property
    def generation(self) -> int:
        """Counts the commits of appends: read it before peek(), then wait_for_appends() with it."""
        return self._generation

    def wait_for_appends(self, seen: int, timeout: float) -> int:
        """Blocks until records were committed after generation `seen`, or `timeout` seconds passed;
        returns the generation now. No record can slip between a peek() and this wait."""
        with self._appended:
            self._appended.wait_for(lambda: self._generation != seen, timeout)
            return self._generation

    def _submit(self, items: list[Item]) -> list[Record]:
        # A held lock that the writer releases: the cheapest one-shot wake-up between threads.
        done = threading.Lock()
        done.acquire()
        request = Request(items, done.release)
        self._queue.put(request)
        done.acquire()
        return request.result()

    def _chunks(self, items: Iterable[tuple[str, bytes]]) -> Iterator[list[Item]]:
        chunk: list[Item] = []
        nbytes = 0
        for stream, payload in items:
            item = self._item(stream, payload)
            if chunk and (len(chunk) >= self._max_batch or nbytes + item[3] > _TXN_BYTES):
                yield chunk
                chunk, nbytes = [], 0
            chunk.append(item)
            nbytes += item[3]
        if chunk:
            yield chunk

    def _item(self, stream: str, payload: bytes) -> Item:
        """Validate in the caller's thread, so a bad reading never reaches the shared transaction."""
        if not isinstance(stream, str):
            raise TypeError(f"stream must be str, not {type(stream).__name__}")
        if not stream or len(stream) > MAX_STREAM_LEN:
            raise ValueError(f"stream must be 1..{MAX_STREAM_LEN} characters, got {len(stream)}")
        if not stream.isprintable():
            # Also rejects lone surrogates, which cannot be stored as UTF-8 and would fail the whole batch.
            raise ValueError("stream must consist of printable characters")
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise TypeError(f"payload must be bytes, not {type(payload).__name__} (encode text first)")
        payload = bytes(payload)  # a private copy: the caller may reuse its buffer
        if len(payload) > self._max_record_bytes:
            raise ValueError(
                f"payload of {len(payload)} bytes exceeds max_record_bytes={self._max_record_bytes}"
            )
        return stream, payload, time.time(), len(payload) + len(stream) + RECORD_OVERHEAD


def _settle(future: asyncio.Future[list[Record]], request: Request) -> None:
    if future.done():  # the awaiting task was cancelled
        return
    if request.error is not None:
        future.set_exception(request.error)
    else:
        future.set_result(request.records)


def _check_options(
    max_bytes: int,
    max_records: int | None,
    on_full: str,
    max_batch: int,
    max_record_bytes: int,
    synchronous: str,
) -> None:
    if max_bytes < 1 or max_batch < 1 or max_record_bytes < 1:
        raise ValueError("max_bytes, max_batch and max_record_bytes must be positive")
    if max_records is not None and max_records < 1:
        raise ValueError("max_records must be positive or None")
    if on_full not in ("refuse", "evict_oldest"):
        raise ValueError(f"on_full must be 'refuse' or 'evict_oldest', not {on_full!r}")
    if synchronous not in ("FULL", "NORMAL"):  # also guards the PRAGMA, which cannot take a parameter
        raise ValueError(f"synchronous must be 'FULL' or 'NORMAL', not {synchronous!r}")
