"""Cutting a stream into lines with bounded memory."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.drivers.common import Rejected
from agent.drivers.serial.framing import LineFramer


def test_lines_split_across_reads() -> None:
    framer = LineFramer(64)
    out = [*framer.feed(b"one\r\ntw"), *framer.feed(b"o\n\nthr"), *framer.feed(b"ee\n")]
    assert out == [b"one", b"two", b"three"]


def test_a_flood_without_newlines_is_refused_once_and_skipped_to_the_next_line() -> None:
    framer = LineFramer(16)
    out = [*framer.feed(b"x" * 100), *framer.feed(b"y" * 100), *framer.feed(b"z\nok\n")]
    assert out == [Rejected("line_too_long", "more than 16 bytes without a newline"), b"ok"]
    assert len(framer._buffer) == 0
    assert list(framer.feed(b"a" * 20 + b"\n")) == [Rejected("line_too_long", "20 bytes")]


def test_reset_reports_a_partial_line() -> None:
    framer = LineFramer(64)
    assert list(framer.feed(b"$GPGGA,12")) == []
    assert framer.reset() == Rejected("truncated", "9 bytes of an unfinished line")
    assert list(framer.feed(b"next\n")) == [b"next"]


@settings(max_examples=300, deadline=None, database=None)
@given(st.lists(st.binary(max_size=50), max_size=20))
def test_memory_stays_bounded_and_lines_are_short(chunks: list[bytes]) -> None:
    framer = LineFramer(32)
    for chunk in chunks:
        for item in framer.feed(chunk):
            assert isinstance(item, Rejected) or (0 < len(item) <= 32 and b"\n" not in item)
        assert len(framer._buffer) <= 32
