"""Value types and exceptions of the outbox public API."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Fixed per-record cost added to len(payload) + len(stream) in the quota: it stands for the row header,
# the id/seq/created columns and B-tree bookkeeping, so that many tiny records still count for something.
RECORD_OVERHEAD = 64
MAX_STREAM_LEN = 512


class OutboxError(Exception):
    """Base class of outbox failures.

    ``committed`` lists the records an ``append_many`` call had already committed (earlier chunks of a
    huge input) when a later chunk failed; it is empty otherwise.
    """

    committed: tuple[Record, ...] = ()


class OutboxFull(OutboxError):
    """The quota refused the append (policy "refuse", or a record larger than the whole quota)."""


class OutboxClosed(OutboxError):
    """The outbox is closed (or closing) and takes no more work."""


@dataclass(frozen=True, slots=True)
class Record:
    id: int
    uid: str
    stream: str
    seq: int
    created: float
    payload: bytes


@dataclass(frozen=True, slots=True)
class SinkStats:
    name: str
    depth: int
    oldest_unsent_age: float | None
    cursor: int


@dataclass(frozen=True, slots=True)
class OutboxStats:
    records: int
    bytes: int
    appended_total: int
    commits_total: int
    evicted_total: int
    refused_total: int
    sinks: tuple[SinkStats, ...]
    recovered_from: Path | None
    oldest_age: float | None
