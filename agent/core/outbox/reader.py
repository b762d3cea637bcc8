"""The read side of the outbox: peek and stats through their own connection.

In WAL mode a reader sees the last committed state and never waits for the writer's transaction, so a
metrics scrape or a sink's peek is not held up by a group commit in progress. Every query here is a
B-tree seek or a bounded range: nothing scales with the size of the backlog.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .model import OutboxClosed, OutboxStats, Record, SinkStats
from .schema import COUNTERS, read_meta

# Two scalar subqueries, because SQLite only turns min()/max() into a single B-tree seek when the
# aggregate stands alone; "SELECT MIN(id), MAX(id)" would scan the whole table.
_BOUNDS = "SELECT (SELECT MIN(id) FROM records), (SELECT MAX(id) FROM records)"
_FIRST_CREATED_AFTER = "SELECT created FROM records WHERE id > ? ORDER BY id LIMIT 1"


class Reader:
    def __init__(self, conn: sqlite3.Connection, epoch: str) -> None:
        self._conn = conn
        self._epoch = epoch
        self._lock = threading.Lock()
        self._closed = False

    def sinks(self) -> list[str]:
        with self._snapshot() as conn:
            return [row[0] for row in conn.execute("SELECT name FROM sinks ORDER BY name")]

    def peek(self, sink: str, limit: int) -> list[Record]:
        with self._snapshot() as conn:
            cursor = _cursor(conn, sink)
            rows = conn.execute(
                "SELECT id, stream, seq, created, payload FROM records WHERE id > ? ORDER BY id LIMIT ?",
                (cursor, limit),
            ).fetchall()
        epoch = self._epoch
        return [
            Record(id_, f"{epoch}-{id_}", stream, seq, created, payload)
            for id_, stream, seq, created, payload in rows
        ]

    def stats(self, recovered_from: Path | None) -> OutboxStats:
        with self._snapshot() as conn:
            meta = read_meta(conn)
            low, high = conn.execute(_BOUNDS).fetchone()
            bounds = (low, high) if high is not None else None
            now = time.time()
            sinks = tuple(
                _sink_stats(conn, name, cursor, bounds, now)
                for name, cursor in conn.execute("SELECT name, cursor FROM sinks ORDER BY name").fetchall()
            )
            oldest = _age(conn, low - 1, now) if bounds else None
        counters = {key: meta[key] for key in COUNTERS}
        return OutboxStats(**counters, sinks=sinks, recovered_from=recovered_from, oldest_age=oldest)

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    @contextmanager
    def _snapshot(self) -> Iterator[sqlite3.Connection]:
        """One read transaction, so that the queries of a call agree with each other."""
        with self._lock:
            if self._closed:
                raise OutboxClosed("outbox is closed")
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")


def _cursor(conn: sqlite3.Connection, sink: str) -> int:
    row = conn.execute("SELECT cursor FROM sinks WHERE name = ?", (sink,)).fetchone()
    if row is None:
        raise KeyError(sink)
    return row[0]


def _sink_stats(
    conn: sqlite3.Connection, name: str, cursor: int, bounds: tuple[int, int] | None, now: float
) -> SinkStats:
    if bounds is None or cursor >= bounds[1]:
        return SinkStats(name=name, depth=0, oldest_unsent_age=None, cursor=cursor)
    low, high = bounds
    # Ids are contiguous (see store.py), so the unconfirmed records are exactly (max(cursor, low-1), high].
    depth = high - max(cursor, low - 1)
    return SinkStats(name=name, depth=depth, oldest_unsent_age=_age(conn, cursor, now), cursor=cursor)


def _age(conn: sqlite3.Connection, after_id: int, now: float) -> float | None:
    row = conn.execute(_FIRST_CREATED_AFTER, (after_id,)).fetchone()
    # Clamped: a wall clock stepped back (NTP on a device that booted without time) must not yield < 0.
    return max(0.0, now - row[0]) if row else None
