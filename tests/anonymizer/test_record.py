"""The anonymized-frame record: round trip, and refusal of anything that is not one."""

from __future__ import annotations

import base64
import json

import pytest

from agent.anonymizer.record import FORMAT, FrameRecord, frame_stream, parse_record

RECORD = FrameRecord("cam0", 7, 1764130000.1234, 640, 480, 0.08312, 2, b"\xff\xd8\xff\xe0jpeg-bytes\xff\xd9")


def test_round_trip_through_bytes_text_and_model_value() -> None:
    payload = RECORD.encode()
    document = json.loads(payload)
    assert document["format"] == FORMAT and document["ts"] == 1764130000.123
    assert base64.b64decode(document["jpeg"]) == RECORD.jpeg
    for value in (payload, payload.decode(), RECORD.to_json()):
        parsed = parse_record(value)
        assert parsed.jpeg == RECORD.jpeg and parsed.seq == 7 and parsed.detections == 2
    assert frame_stream("cam0") == "camera/cam0/frame"
    assert "jpeg-bytes" not in repr(RECORD)


@pytest.mark.parametrize(
    "change",
    [
        {"format": "other/1"},
        {"jpeg": "not base64!"},
        {"jpeg": base64.b64encode(b"GIF89a").decode()},
        {"seq": "7"},
        {"seq": True},
        {"width": 0},
        {"ts": None},
        {"camera": 5},
    ],
)
def test_malformed_records_are_refused(change: dict) -> None:
    with pytest.raises(ValueError):
        parse_record({**RECORD.to_json(), **change})


@pytest.mark.parametrize("value", [b"", b"[1]", b"{", "[" * 100_000, {"format": FORMAT}])
def test_garbage_is_refused(value) -> None:
    with pytest.raises(ValueError):
        parse_record(value)
