"""Debouncing in software, the same on every pin factory (MockFactory has none; real ones differ).

A switch reports a level once it has held for `bounce` seconds (every edge restarts the wait), so the last
level after a burst of contact bounce is the one reported, never a stale one. A counter counts an edge
unless it came within `bounce` of the last counted one (a reed switch chatters right after it closes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class Settle:
    """Calls `report(level)` when `read()` has held a new level for `bounce` seconds after an edge."""

    def __init__(self, bounce: float, read: Callable[[], bool], report: Callable[[bool], None]) -> None:
        self.bounce = bounce
        self.read = read
        self.report = report
        self.last: bool | None = None
        self.edges = 0
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()

    def edge(self) -> None:
        with self._lock:
            self.edges += 1
            if self._timer is not None:
                self._timer.cancel()
            if self.bounce <= 0:
                self._timer = None
            else:
                self._timer = threading.Timer(self.bounce, self.check)
                self._timer.daemon = True
                self._timer.start()
                return
        self.check()

    def check(self) -> None:
        level = bool(self.read())
        with self._lock:
            if level == self.last:
                return
            self.last = level
        self.report(level)

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = None


class PulseCounter:
    def __init__(self, bounce: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.bounce = bounce
        self.clock = clock
        self.count = 0
        self.bounced = 0  # edges ignored as contact bounce
        self._last = -float("inf")
        self._lock = threading.Lock()

    def pulse(self) -> int | None:
        """The new count, or None for a bounce."""
        now = self.clock()
        with self._lock:
            if now - self._last < self.bounce:
                self.bounced += 1
                return None
            self._last = now
            self.count += 1
            return self.count
