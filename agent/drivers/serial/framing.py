"""Cutting a byte stream into lines, with bounded memory.

A serial port is a stream: reads split lines anywhere, a device may send a flood without newlines, and a
device that vanishes leaves half a line behind. The framer keeps at most `max_line` bytes; a longer line is
refused once (`line_too_long`) and skipped up to its newline, so garbage can never grow the buffer.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..common import Rejected


class LineFramer:
    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self._buffer = bytearray()
        self._skipping = False  # inside a line already refused as too long

    def feed(self, data: bytes) -> Iterator[bytes | Rejected]:
        """Complete lines (without their CR/LF; empty lines dropped) and rejections, in stream order."""
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            piece = data[start:end]
            start = end + 1
            if self._skipping:
                self._skipping = False
                self._buffer.clear()
                continue
            if self._buffer:
                self._buffer += piece
                piece = bytes(self._buffer)
                self._buffer.clear()
            if len(piece) > self.max_line:
                yield Rejected("line_too_long", f"{len(piece)} bytes")
                continue
            line = piece.rstrip(b"\r")
            if line:
                yield line
        rest = data[start:]
        if rest and not self._skipping:
            self._buffer += rest
            if len(self._buffer) > self.max_line:
                yield Rejected("line_too_long", f"more than {self.max_line} bytes without a newline")
                self._buffer.clear()
                self._skipping = True

    def reset(self) -> Rejected | None:
        """Forget a partial line (the port went away mid-line); it is reported as truncated."""
        partial = len(self._buffer)
        self._buffer.clear()
        self._skipping = False
        return Rejected("truncated", f"{partial} bytes of an unfinished line") if partial else None
