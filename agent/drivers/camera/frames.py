"""A captured frame, and the one-slot hand-off between the capture thread and the consumer.

Privacy is fail-closed: a frame's pixels live only in memory, go only to the consumer (the anonymizer),
and never appear in a repr, a log line or a file. When the consumer is busy the older frame is dropped
(counted); when there is no consumer every frame is dropped. Nothing is ever passed through unprocessed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    seq: int  # per driver, from 1, gap-free at capture (gaps downstream are drops)
    timestamp: float  # unix seconds at capture
    image: Any = field(repr=False)  # numpy array, H x W x 3, BGR (OpenCV's order)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.image.shape)

    def __repr__(self) -> str:  # never the pixels, not even a summary of them
        return f"Frame(seq={self.seq}, timestamp={self.timestamp:.3f}, shape={self.shape})"


FrameConsumer = Callable[[Frame], None]


class Mailbox:
    """Holds the latest frame for the consumer: put() never blocks the capture thread."""

    def __init__(self) -> None:
        self._frame: Frame | None = None
        self._closed = False
        self._cond = threading.Condition()
        self.replaced = 0  # frames overwritten before the consumer took them

    def put(self, frame: Frame) -> None:
        with self._cond:
            if self._frame is not None:
                self.replaced += 1
            self._frame = frame
            self._cond.notify()

    def take(self, timeout: float) -> Frame | None:
        with self._cond:
            self._cond.wait_for(lambda: self._frame is not None or self._closed, timeout)
            frame, self._frame = self._frame, None
            return frame

    def clear(self) -> int:
        with self._cond:
            dropped = int(self._frame is not None)
            self._frame = None
            return dropped

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._frame = None
            self._cond.notify_all()

    def open(self) -> None:
        with self._cond:
            self._closed = False
