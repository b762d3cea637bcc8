"""PMS5003 frames: decoding, the framer's resynchronisation, and bytes that must never raise."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.drivers.common import Rejected
from agent.drivers.serial import pms5003


def readings(results: list) -> list[pms5003.PmsReading]:
    return [r for r in results if isinstance(r, pms5003.PmsReading)]


def reasons(results: list) -> list[str]:
    return [r.reason for r in results if isinstance(r, Rejected)]


def test_a_frame_decodes() -> None:
    frame = pms5003.encode(5, 12, 20, counts=(1000, 400, 80, 9, 3, 1), cf1=(6, 13, 21))
    assert len(frame) == 32 and frame[:2] == b"BM"
    reading = pms5003.parse_frame(frame)
    assert isinstance(reading, pms5003.PmsReading)
    assert (reading.pm1, reading.pm25, reading.pm10) == (5, 12, 20)
    assert (reading.pm1_cf1, reading.pm25_cf1, reading.pm10_cf1) == (6, 13, 21)
    assert reading.counts == (1000, 400, 80, 9, 3, 1)


def test_bad_frames_are_rejected() -> None:
    good = pms5003.encode(5, 12, 20)
    broken = bytearray(good)
    broken[10] ^= 0x01
    assert pms5003.parse_frame(bytes(broken)).reason == "checksum"
    assert pms5003.parse_frame(good[:20]).reason == "truncated"
    assert pms5003.parse_frame(b"XX" + good[2:]).reason == "format"
    assert pms5003.parse_frame(pms5003.encode(30, 12, 20)).reason == "range"  # PM1 > PM2.5
    assert pms5003.parse_frame(pms5003.encode(5, 12, 2000)).reason == "range"
    assert pms5003.parse_frame(pms5003.encode(5, 12, -3)).reason == "range"  # -3 wraps to 65533


def test_framer_finds_frames_split_anywhere_and_after_garbage() -> None:
    stream = b"\x00\xffnoise" + b"".join(pms5003.encode(i, i + 1, i + 2) for i in range(10))
    framer = pms5003.PmsFramer()
    results = []
    for i in range(0, len(stream), 7):
        results += framer.feed(stream[i : i + 7])
    assert [r.pm1 for r in readings(results)] == list(range(10))
    assert set(reasons(results)) == {"garbage"}


def test_framer_recovers_the_frame_after_a_truncated_one() -> None:
    truncated = pms5003.encode(1, 2, 3)[:17]
    framer = pms5003.PmsFramer()
    results = list(framer.feed(truncated + pms5003.encode(4, 5, 6) + pms5003.encode(7, 8, 9)))
    assert [r.pm1 for r in readings(results)] == [4, 7]
    assert "checksum" in reasons(results)


def test_framer_rejects_a_false_start_and_reports_a_partial_frame_on_reset() -> None:
    framer = pms5003.PmsFramer()
    results = list(framer.feed(b"BM\x01\x00" + pms5003.encode(1, 2, 3) + pms5003.encode(4, 5, 6)[:9]))
    assert reasons(results) == ["length", "garbage"] and [r.pm1 for r in readings(results)] == [1]
    assert framer.reset() == Rejected("truncated", "9 bytes of an unfinished frame")
    assert framer.reset() is None


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.binary(max_size=80), max_size=10))
def test_arbitrary_bytes_never_raise_and_never_grow_the_buffer(chunks: list[bytes]) -> None:
    framer = pms5003.PmsFramer()
    for chunk in chunks:
        for result in framer.feed(chunk):
            assert isinstance(result, pms5003.PmsReading | Rejected)
        assert len(framer._buffer) < pms5003.FRAME_LENGTH


@settings(max_examples=200, deadline=None, database=None)
@given(st.binary(min_size=32, max_size=32))
def test_parse_frame_never_raises(frame: bytes) -> None:
    assert isinstance(pms5003.parse_frame(frame), pms5003.PmsReading | Rejected)


@settings(max_examples=100, deadline=None, database=None)
@given(st.integers(0, 2**32), st.integers(0, 40))
def test_good_frames_survive_random_corruption_of_their_neighbours(seed: int, flips: int) -> None:
    rng = random.Random(seed)
    frames = [pms5003.encode(i, i + 1, i + 2) for i in range(20)]
    stream = bytearray(b"".join(frames))
    for _ in range(flips):
        stream[rng.randrange(len(stream))] = rng.randrange(256)
    framer = pms5003.PmsFramer()
    results = list(framer.feed(bytes(stream)))
    untouched = [i for i, f in enumerate(frames) if bytes(stream[i * 32 : i * 32 + 32]) == f]
    found = {r.pm1 for r in readings(results)}
    # A corrupted byte may cost its own frame, never an intact one (a false start inside a
    # corrupted frame can only be skipped, and checksums guard the rest).
    assert set(untouched) <= found
