"""Durable outbox: readings survive power loss until every northbound sink has confirmed them.

A SQLite database in WAL mode with synchronous=FULL. ``append()`` returns only after its reading is
committed; a single writer thread commits everything pending in one transaction (group commit). Each
sink has a persisted cursor; a record is deleted once all registered sinks confirmed it (with no sink
registered, records are kept for sinks to come). Records carry a per-stream ``seq`` and a globally unique
``uid`` so consumers can drop duplicates after a crash. A byte/record quota either refuses new readings
or evicts the oldest ones, counted in ``stats()`` and persisted. A corrupt file found at open is renamed
aside and replaced (``Outbox.recovered_from``).
"""

from .model import (
    MAX_STREAM_LEN,
    RECORD_OVERHEAD,
    OutboxClosed,
    OutboxError,
    OutboxFull,
    OutboxStats,
    Record,
    SinkStats,
)
from .outbox import Outbox

__all__ = [
    "MAX_STREAM_LEN",
    "RECORD_OVERHEAD",
    "Outbox",
    "OutboxClosed",
    "OutboxError",
    "OutboxFull",
    "OutboxStats",
    "Record",
    "SinkStats",
]
