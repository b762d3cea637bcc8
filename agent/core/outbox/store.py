"""The write side of the outbox: every change goes through one connection, under one lock.

Invariant relied upon by the readers: the ``records`` table always holds one contiguous id range.
Ids are assigned consecutively by the single writer (a rolled-back transaction also rolls back
sqlite_sequence, so no gap appears), and rows are only ever deleted from the old end (acks delete up to
the slowest cursor, evictions delete the oldest). Counting a range is therefore ``max_id - lower``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

from .commitqueue import Request
from .model import OutboxClosed, OutboxError, OutboxFull, Record
from .schema import COUNTERS, read_meta

log = logging.getLogger("agent.outbox")

_EVICTION_LOG_INTERVAL_S = 10.0
_INSERT = "INSERT INTO records (id, stream, seq, created, size, payload) VALUES (?, ?, ?, ?, ?, ?)"
_UPSERT_SEQ = (
    "INSERT INTO streams (stream, last_seq) VALUES (?, ?)"
    " ON CONFLICT (stream) DO UPDATE SET last_seq = excluded.last_seq"
)


@dataclass(frozen=True, slots=True)
class Quota:
    max_bytes: int
    max_records: int | None
    on_full: str  # "refuse" or "evict_oldest"

    def excess(self, nbytes: int, nrecords: int) -> tuple[int, int]:
        """How many bytes and records are over the quota (<= 0 when within)."""
        over_records = nrecords - self.max_records if self.max_records is not None else 0
        return nbytes - self.max_bytes, over_records


@dataclass(slots=True)
class _State:
    """Mirror of the persisted counters, owned by whoever holds the store lock."""

    last_id: int
    bytes: int
    records: int
    appended_total: int
    commits_total: int
    evicted_total: int
    refused_total: int


class Store:
    def __init__(self, conn: sqlite3.Connection, quota: Quota) -> None:
        self._conn = conn
        self._quota = quota
        self._lock = threading.Lock()
        self._closed = False
        self._eviction_log = _EvictionLog()
        meta = read_meta(conn)
        self.epoch: str = meta["epoch"]
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
        self._state = _State(last_id=row[0] if row else 0, **{key: meta[key] for key in COUNTERS})

    # -- appends (writer thread) -------------------------------------------------------------

    def commit_appends(self, requests: list[Request]) -> None:
        """Commit a group of requests in one transaction and complete every one of them; never raises."""
        outcomes: list[tuple[Request, list[Record] | None, BaseException | None]]
        with self._lock:
            try:
                outcomes = self._commit_appends(requests)
            except Exception as exc:
                if not isinstance(exc, OutboxClosed | sqlite3.Error):
                    log.exception("outbox: unexpected failure while committing appends")
                outcomes = [(request, None, _failure(exc)) for request in requests]
        for request, records, error in outcomes:
            request.finish(records, error)

    def _commit_appends(
        self, requests: list[Request]
    ) -> list[tuple[Request, list[Record] | None, BaseException | None]]:
        self._check_open()
        state = replace(self._state)
        accepted, refused = self._admit(requests, state)
        evicted_records = evicted_bytes = 0
        results: list[list[Record]] = []
        with self._transaction():
            if accepted:
                results, evicted_records, evicted_bytes = self._write(accepted, state)
            state.refused_total += sum(len(request.items) for request in refused)
            self._save(state)
        self._state = state
        if evicted_records:
            self._eviction_log.add(evicted_records, evicted_bytes, state.evicted_total)
        full = [(request, None, self._refusal(request)) for request in refused]
        return [(request, records, None) for request, records in zip(accepted, results, strict=True)] + full

    def _admit(self, requests: list[Request], state: _State) -> tuple[list[Request], list[Request]]:
        """Split requests into those stored and those refused; a request is never partially stored."""
        accepted: list[Request] = []
        refused: list[Request] = []
        nbytes, nrecords = state.bytes, state.records
        for request in requests:
            # A record larger than the whole quota could never be stored, whatever the policy.
            refuse = request.largest > self._quota.max_bytes
            if not refuse and self._quota.on_full == "refuse":
                over_bytes, over_records = self._quota.excess(
                    nbytes + request.nbytes, nrecords + len(request.items)
                )
                refuse = over_bytes > 0 or over_records > 0
            if refuse:
                refused.append(request)
                continue
            accepted.append(request)
            nbytes += request.nbytes
            nrecords += len(request.items)
        return accepted, refused

    def _refusal(self, request: Request) -> OutboxFull:
        if request.largest > self._quota.max_bytes:
            return OutboxFull(
                f"record of {request.largest} quota bytes exceeds max_bytes={self._quota.max_bytes}"
            )
        return OutboxFull(
            f"quota reached (max_bytes={self._quota.max_bytes}, max_records={self._quota.max_records}); "
            f"refused {len(request.items)} record(s)"
        )

    def _write(self, accepted: list[Request], state: _State) -> tuple[list[list[Record]], int, int]:
        evict = self._quota.on_full == "evict_oldest"
        evicted = (0, 0)
        if evict:
            incoming = sum(len(request.items) for request in accepted)
            evicted = self._evict(state, sum(request.nbytes for request in accepted), incoming)
        results = self._insert(accepted, state)
        if evict:
            # Only when the batch alone exceeds the quota: its own oldest readings make room.
            again = self._evict(state, 0, 0)
            evicted = (evicted[0] + again[0], evicted[1] + again[1])
        state.commits_total += 1
        return results, evicted[0], evicted[1]

    def _insert(self, accepted: list[Request], state: _State) -> list[list[Record]]:
        last_seq = {stream: self._last_seq(stream) for request in accepted for stream, *_ in request.items}
        rows: list[tuple[int, str, int, float, int, bytes]] = []
        results: list[list[Record]] = []
        next_id = state.last_id
        for request in accepted:
            records = []
            for stream, payload, created, size in request.items:
                next_id += 1
                seq = last_seq[stream] = last_seq[stream] + 1
                rows.append((next_id, stream, seq, created, size, payload))
                records.append(Record(next_id, f"{self.epoch}-{next_id}", stream, seq, created, payload))
            results.append(records)
        self._conn.executemany(_INSERT, rows)
        self._conn.executemany(_UPSERT_SEQ, last_seq.items())
        state.last_id = next_id
        state.records += len(rows)
        state.bytes += sum(request.nbytes for request in accepted)
        state.appended_total += len(rows)
        return results

    def _last_seq(self, stream: str) -> int:
        row = self._conn.execute("SELECT last_seq FROM streams WHERE stream = ?", (stream,)).fetchone()
        return row[0] if row else 0

    def _evict(self, state: _State, extra_bytes: int, extra_records: int) -> tuple[int, int]:
        """Delete the oldest records, confirmed or not, until ``extra`` more fits in the quota."""
        over_bytes, over_records = self._quota.excess(
            state.bytes + extra_bytes, state.records + extra_records
        )
        if over_bytes <= 0 and over_records <= 0:
            return 0, 0
        count = freed = 0
        last_id = None
        rows = self._conn.execute("SELECT id, size FROM records ORDER BY id")
        for row_id, size in rows:  # streamed row by row: the backlog is never loaded
            if freed >= over_bytes and count >= over_records:
                break
            count += 1
            freed += size
            last_id = row_id
        rows.close()
        if last_id is not None:
            self._conn.execute("DELETE FROM records WHERE id <= ?", (last_id,))
        state.records -= count
        state.bytes -= freed
        state.evicted_total += count
        return count, freed

    # -- sinks -------------------------------------------------------------------------------

    def register_sink(self, name: str) -> None:
        with self._lock:
            self._check_open()
            with self._transaction():
                # A new sink starts just before the oldest retained record, so it receives the backlog.
                self._conn.execute(
                    "INSERT OR IGNORE INTO sinks (name, cursor)"
                    " SELECT ?, COALESCE(MIN(id) - 1, ?) FROM records",
                    (name, self._state.last_id),
                )

    def unregister_sink(self, name: str) -> None:
        with self._lock:
            self._check_open()
            state = replace(self._state)
            with self._transaction():
                if self._conn.execute("DELETE FROM sinks WHERE name = ?", (name,)).rowcount == 0:
                    raise KeyError(name)
                self._delete_confirmed(state)
                self._save(state)
            self._state = state

    def ack(self, sink: str, up_to_id: int) -> int:
        with self._lock:
            self._check_open()
            row = self._conn.execute("SELECT cursor FROM sinks WHERE name = ?", (sink,)).fetchone()
            if row is None:
                raise KeyError(sink)
            if up_to_id > self._state.last_id:
                # Never clamp: an id this outbox never issued means the consumer confused databases
                # (e.g. ids from before a corrupt file was set aside); clamping would skip records.
                raise ValueError(f"ack of id {up_to_id} beyond the last issued id {self._state.last_id}")
            if up_to_id <= row[0]:
                return 0  # cursors only move forward; a repeated or stale ack is harmless
            state = replace(self._state)
            with self._transaction():
                self._conn.execute("UPDATE sinks SET cursor = ? WHERE name = ?", (up_to_id, sink))
                deleted = self._delete_confirmed(state)
                self._save(state)
            self._state = state
            return deleted

    def _delete_confirmed(self, state: _State) -> int:
        """Delete what every sink confirmed; with no sink at all, keep everything for sinks to come."""
        floor = self._conn.execute("SELECT MIN(cursor) FROM sinks").fetchone()[0]
        if floor is None:
            return 0
        count, nbytes = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM records WHERE id <= ?", (floor,)
        ).fetchone()
        if count:
            self._conn.execute("DELETE FROM records WHERE id <= ?", (floor,))
        state.records -= count
        state.bytes -= nbytes
        return count

    # -- lifecycle -----------------------------------------------------------------------------

    def close(self) -> None:
        """Fold the WAL into the database file and close; the caller has stopped the writer and readers."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._eviction_log.flush(self._state.evicted_total)
            try:
                busy, _, _ = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if busy:
                    log.warning("outbox: final WAL checkpoint was blocked; SQLite completes it on next open")
            finally:
                self._conn.close()

    def _check_open(self) -> None:
        if self._closed:
            raise OutboxClosed("outbox is closed")

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def _save(self, state: _State) -> None:
        self._conn.executemany(
            "UPDATE meta SET value = ? WHERE key = ?", [(getattr(state, key), key) for key in COUNTERS]
        )


def _failure(exc: Exception) -> OutboxError:
    """A fresh exception per request: one instance raised in several threads would share a traceback."""
    if isinstance(exc, OutboxError):
        return type(exc)(str(exc))
    return OutboxError(f"commit failed: {exc}")


class _EvictionLog:
    """Warns about evictions with counts (never payloads), at most once per interval.

    Under a full quota every group commit evicts; one warning per commit would flood the journal of a
    device that is already short of disk. Counts suppressed in between are carried into the next warning.
    """

    def __init__(self) -> None:
        self._records = 0
        self._bytes = 0
        self._next_at = 0.0

    def add(self, records: int, nbytes: int, total: int) -> None:
        self._records += records
        self._bytes += nbytes
        if time.monotonic() >= self._next_at:
            self.flush(total)

    def flush(self, total: int) -> None:
        if not self._records:
            return
        log.warning(
            "outbox quota reached: evicted %d oldest record(s) (%d bytes) since the last report;"
            " evicted_total=%d",
            self._records,
            self._bytes,
            total,
        )
        self._records = self._bytes = 0
        self._next_at = time.monotonic() + _EVICTION_LOG_INTERVAL_S
