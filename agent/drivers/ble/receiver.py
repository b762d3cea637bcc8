"""One BTHome sensor's receiving state: its key, the last counter accepted, and what was rejected.

Advertisements repeat: a sensor sends the same frame several times per measurement, so a frame identical
to the last one is a duplicate, dropped quietly, when it carries a packet id or a counter (without one, the
same bytes may well be a new measurement of an unchanged value). An encrypted frame whose
counter is older than the last accepted one, or the same counter with other bytes, is a replay and is
rejected. A sensor that reboots restarts its counter: it stays rejected until the agent restarts (the
safe side for Thr.CD.8, poisoned data), which docs/ble.md tells operators.
"""

from __future__ import annotations

from collections import Counter

from .bthome import BTHomeError, Decryptor, Frame, parse_plain


class Receiver:
    __slots__ = ("_decryptor", "_last", "_last_counter", "accepted", "address", "duplicates", "rejected")

    def __init__(self, address: str, decryptor: Decryptor | None = None) -> None:
        self.address = address
        self._decryptor = decryptor
        self._last: bytes | None = None
        self._last_counter: int | None = None
        self.accepted = 0
        self.duplicates = 0
        self.rejected: Counter[str] = Counter()

    @property
    def encrypted(self) -> bool:
        return self._decryptor is not None

    def receive(self, data: bytes) -> Frame | None:
        """The frame to apply, or None for a duplicate. Raises BTHomeError (already counted) to reject."""
        if data == self._last:
            self.duplicates += 1
            return None
        try:
            frame = self._decryptor.parse(data) if self._decryptor else parse_plain(data)
            self._check_fresh(frame)
        except BTHomeError as error:
            self.rejected[error.reason] += 1
            raise
        for problem in frame.problems:
            self.rejected[problem] += 1
        # Only frames that identify themselves can be recognised as repeats.
        self._last = data if frame.packet_id is not None or frame.counter is not None else None
        self.accepted += 1
        return frame

    def _check_fresh(self, frame: Frame) -> None:
        if frame.counter is None:
            return
        # Same counter, other bytes: a forged or replayed frame; same bytes were caught as a duplicate.
        if self._last_counter is not None and frame.counter <= self._last_counter:
            raise BTHomeError("replayed", f"counter {frame.counter} <= {self._last_counter}")
        self._last_counter = frame.counter
