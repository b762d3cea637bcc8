"""Plantower PMS5003 particulate sensor: 32-byte frames, their framer and their encoder.

A frame is 0x42 0x4d, a big-endian length (28: 13 data words + checksum), 13 big-endian words
(PM1.0/PM2.5/PM10 'CF=1', the same at atmospheric environment, six particle counts per 0.1 L, reserved)
and a 16-bit checksum: the sum of the 30 bytes before it. The framer resynchronises on the start bytes
after garbage or a broken frame, so one bad byte costs one frame, never the stream.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from ..common import Rejected

START = b"\x42\x4d"
FRAME_LENGTH = 32
DATA_LENGTH = 28
MAX_PM = 1000  # µg/m³: the sensor's maximum range; above it the frame is corrupt
_WORDS = struct.Struct(">2sH13HH")


@dataclass(frozen=True, slots=True)
class PmsReading:
    pm1: int  # µg/m³, atmospheric environment (what an outdoor sensor reports)
    pm25: int
    pm10: int
    pm1_cf1: int  # µg/m³, standard particle (CF=1)
    pm25_cf1: int
    pm10_cf1: int
    counts: tuple[int, int, int, int, int, int]  # particles > 0.3, 0.5, 1.0, 2.5, 5.0, 10 µm per 0.1 L


COUNT_SIZES = ("0_3", "0_5", "1_0", "2_5", "5_0", "10")


def parse_frame(frame: bytes) -> PmsReading | Rejected:
    if len(frame) != FRAME_LENGTH:
        return Rejected("truncated", f"{len(frame)} bytes, expected {FRAME_LENGTH}")
    start, length, *words, check = _WORDS.unpack(frame)
    if start != START:
        return Rejected("format", "no start bytes 0x42 0x4d")
    if length != DATA_LENGTH:
        return Rejected("length", f"length field {length}, expected {DATA_LENGTH}")
    if sum(frame[:30]) & 0xFFFF != check:
        return Rejected("checksum", f"expected {sum(frame[:30]) & 0xFFFF:#06x}, got {check:#06x}")
    cf1, atm, counts = words[0:3], words[3:6], words[6:12]
    for trio in (cf1, atm):
        # PM1 ⊂ PM2.5 ⊂ PM10: cumulative by definition, so a smaller PM10 is a corrupt frame.
        if max(trio) > MAX_PM or not trio[0] <= trio[1] <= trio[2]:
            return Rejected("range", f"impossible PM values {trio}")
    return PmsReading(*atm, *cf1, counts=tuple(counts))  # type: ignore[arg-type]


class PmsFramer:
    """Finds frames in a byte stream; at most one frame plus one read is ever buffered."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> Iterator[PmsReading | Rejected]:
        buffer = self._buffer
        buffer += data
        while True:
            start = buffer.find(START)
            if start < 0:
                # Keep a trailing 0x42: it may be the first half of the next start.
                keep = 1 if buffer.endswith(START[:1]) else 0
                if len(buffer) > keep:
                    yield Rejected("garbage", f"{len(buffer) - keep} bytes without a frame start")
                    del buffer[: len(buffer) - keep]
                return
            if start > 0:
                yield Rejected("garbage", f"{start} bytes before a frame start")
                del buffer[:start]
            if len(buffer) < 4:
                return
            length = buffer[2] << 8 | buffer[3]
            if length != DATA_LENGTH:
                yield Rejected("length", f"length field {length}, expected {DATA_LENGTH}")
                del buffer[:2]  # a false start: look for the next one
                continue
            if len(buffer) < FRAME_LENGTH:
                return
            result = parse_frame(bytes(buffer[:FRAME_LENGTH]))
            if isinstance(result, Rejected) and result.reason == "checksum":
                # A truncated frame followed by a good one fails its checksum: skip only the start
                # bytes, so the good frame inside is found on the next turn.
                del buffer[:2]
            else:
                del buffer[:FRAME_LENGTH]
            yield result

    def reset(self) -> Rejected | None:
        partial = len(self._buffer)
        self._buffer.clear()
        return Rejected("truncated", f"{partial} bytes of an unfinished frame") if partial else None


def encode(pm1: int, pm25: int, pm10: int, *, counts: tuple[int, ...] = (900, 300, 60, 8, 2, 1),
           cf1: tuple[int, int, int] | None = None) -> bytes:  # fmt: skip
    """A valid frame (the simulator's and the tests'); values are clamped to 16 bits, not checked."""
    words = [*(cf1 or (pm1, pm25, pm10)), pm1, pm25, pm10, *counts, 0]
    body = struct.pack(">2sH13H", START, DATA_LENGTH, *(w & 0xFFFF for w in words))
    return body + struct.pack(">H", sum(body) & 0xFFFF)
