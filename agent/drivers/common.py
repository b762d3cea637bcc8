"""Helpers every driver shares: counted rejections of bad input, and reconnect backoff.

A driver never lets bad input escape as an exception: a parser returns either a reading or a `Rejected`
with a short, fixed reason (`checksum`, `range`, ...). The driver counts it per reason, logs it (rate
limited, so a flood of garbage cannot flood the log) and goes on.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a piece of input was refused. `reason` is a counter key (short, fixed); `detail` is for logs."""

    reason: str
    detail: str = ""


class Rejections(Mapping[str, int]):
    """Per-reason counters of refused input; a read-only mapping (`driver.rejected["checksum"]`).

    Thread-safe: a reader thread counts while the event loop reads them for health and metrics.
    Each reason is logged at most once per `log_every` seconds, with how many were not logged since."""

    def __init__(self, log: logging.Logger, *, log_every: float = 10.0) -> None:
        self._log = log
        self._log_every = log_every
        self._counts: dict[str, int] = {}
        self._unlogged: dict[str, int] = {}
        self._last_logged: dict[str, float] = {}
        self._lock = threading.Lock()
        self.total = 0

    def count(self, rejected: Rejected) -> None:
        now = time.monotonic()
        with self._lock:
            reason = rejected.reason
            self._counts[reason] = self._counts.get(reason, 0) + 1
            self.total += 1
            last = self._last_logged.get(reason)
            if last is not None and now - last < self._log_every:
                self._unlogged[reason] = self._unlogged.get(reason, 0) + 1
                return
            self._last_logged[reason] = now
            suppressed = self._unlogged.pop(reason, 0)
        more = f" (+{suppressed} more since last logged)" if suppressed else ""
        self._log.warning("rejected input: %s: %s%s", reason, rejected.detail[:200], more)

    def summary(self, limit: int = 6) -> str:
        """'checksum=3 range=1', most frequent first: short enough for a health detail."""
        with self._lock:
            items = sorted(self._counts.items(), key=lambda item: (-item[1], item[0]))
        return " ".join(f"{reason}={count}" for reason, count in items[:limit])

    def __getitem__(self, reason: str) -> int:
        with self._lock:
            return self._counts[reason]

    def get(self, reason: str, default: int | None = 0) -> int | None:  # type: ignore[override]
        with self._lock:
            return self._counts.get(reason, default)

    def __iter__(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._counts))

    def __len__(self) -> int:
        with self._lock:
            return len(self._counts)


class Backoff:
    """Exponential delays with ±10 % jitter (a fleet must not retry in lockstep), reset on success."""

    def __init__(self, initial: float, maximum: float, *, rng: random.Random | None = None) -> None:
        self.initial, self.maximum = initial, maximum
        self.attempts = 0
        self._random = rng or random.Random()

    def next_delay(self) -> float:
        delay = min(self.maximum, self.initial * 2**self.attempts)
        self.attempts += 1
        return delay * self._random.uniform(0.9, 1.1)

    def reset(self) -> None:
        self.attempts = 0


def redact_url(url: str) -> str:
    """An address fit for a log: 'rtsp://user:secret@cam/x' -> 'rtsp://***@cam/x'."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "***@" + authority.rpartition("@")[2]
    return f"{scheme}://{authority}{slash}{path}"
