"""Failed-login limiting per source, so passwords cannot be guessed at the speed of the network.

A source (the client's address, as the facade passes it) that fails `max_failures` times within `window`
seconds is refused for `lockout` seconds, without its credentials being checked at all (which also spares
the CPU the scrypt work). A success clears the source's record. Memory is bounded: past `max_sources`
tracked sources, the one seen longest ago is forgotten.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

from agent.security.access import Unauthenticated

Clock = Callable[[], float]


class RateLimited(Unauthenticated):
    """Too many failed logins from this source. A 401 by the seam's contract; a facade that knows this
    class may answer 429 with `Retry-After: retry_after` instead."""

    def __init__(self, retry_after: float, challenges: tuple[str, ...] = ()) -> None:
        super().__init__("too many failed logins from this address; try again later", challenges)
        self.retry_after = retry_after


@dataclass
class _Record:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0


class FailureLimiter:
    def __init__(
        self, *, max_failures: int, window: float, lockout: float, clock: Clock, max_sources: int = 10_000
    ) -> None:
        self._max_failures = max_failures
        self._window = window
        self._lockout = lockout
        self._clock = clock
        self._max_sources = max_sources
        self._records: OrderedDict[str, _Record] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, source: str) -> float:
        """Seconds this source must still wait (0 when it may try)."""
        with self._lock:
            record = self._records.get(source)
            return max(0.0, record.locked_until - self._clock()) if record else 0.0

    def failed(self, source: str) -> None:
        now = self._clock()
        with self._lock:
            record = self._records.pop(source, None) or _Record()
            self._records[source] = record  # (re)inserted last: the most recently seen
            record.failures.append(now)
            while record.failures and record.failures[0] <= now - self._window:
                record.failures.popleft()
            if len(record.failures) >= self._max_failures:
                record.locked_until = now + self._lockout
                record.failures.clear()
            while len(self._records) > self._max_sources:
                self._records.popitem(last=False)

    def succeeded(self, source: str) -> None:
        with self._lock:
            self._records.pop(source, None)
