"""The generic line protocol: JSON and key=value lines mapped by configuration, all or nothing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.drivers.common import Rejected
from agent.drivers.serial import lines
from agent.drivers.serial.config import FieldMap

FIELDS = {
    "pm25": FieldMap(service="air", resource="pm25", unit="ug/m3", min=0, max=1000),
    "temp": FieldMap(service="env", resource="temperature", unit="Cel", min=-40, max=85),
    "count": FieldMap(service="env", resource="count", type="int"),
    "door": FieldMap(service="body", resource="door", type="boolean"),
    "fw": FieldMap(service="info", resource="firmware", type="string"),
}


def test_json_lines_map_configured_keys_and_ignore_others() -> None:
    values = lines.parse(b'{"pm25": 12, "temp": 21.5, "door": true, "noise": [1, 2]}', FIELDS, "json")
    assert values == {"pm25": 12.0, "temp": 21.5, "door": True}
    assert isinstance(values["pm25"], float)  # a double resource gets a float, even from JSON 12


def test_key_value_lines() -> None:
    values = lines.parse(b"pm25=12.5, temp=-3e0,count=7,door=0,fw=1.2.3", FIELDS, "kv")
    assert values == {"pm25": 12.5, "temp": -3.0, "count": 7, "door": False, "fw": "1.2.3"}


@pytest.mark.parametrize(
    ("line", "line_format", "reason"),
    [
        (b'{"pm25": -1}', "json", "range"),  # negative PM
        (b'{"temp": 200}', "json", "range"),
        (b'{"pm25": "12"}', "json", "type"),
        (b'{"pm25": true}', "json", "type"),  # a bool is not a number
        (b'{"pm25": NaN}', "json", "format"),
        (b'{"pm25": 1e999}', "json", "type"),
        (b'{"pm25": 12, "count": 1.5}', "json", "type"),  # one bad field refuses the line
        (b'{"count": 99999999999}', "json", "type"),  # not an int32
        (b'{"pm25": 1' + b"0" * 400 + b"}", "json", "type"),
        (b"[1, 2]", "json", "format"),
        (b"{not json", "json", "format"),
        (b"[" * 5000 + b"]" * 5000, "json", "format"),
        (b'{"other": 1}', "json", "unmapped"),
        (b'{"pm25": 1\xff}', "json", "encoding"),
        (b"pm25", "kv", "format"),
        (b"pm25=abc", "kv", "type"),
        (b"pm25=inf", "kv", "type"),
        (b"door=maybe", "kv", "type"),
        (b"=3", "kv", "format"),
    ],
)
def test_bad_lines_are_rejected(line: bytes, line_format: str, reason: str) -> None:
    result = lines.parse(line, FIELDS, line_format)  # type: ignore[arg-type]
    assert isinstance(result, Rejected), result
    assert result.reason == reason


@settings(max_examples=300, deadline=None, database=None)
@given(st.binary(max_size=200), st.sampled_from(["json", "kv"]))
def test_arbitrary_bytes_never_raise(data: bytes, line_format: str) -> None:
    result = lines.parse(data, FIELDS, line_format)  # type: ignore[arg-type]
    assert isinstance(result, dict | Rejected)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids, max_size=3),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None, database=None)
@given(st.dictionaries(st.sampled_from([*FIELDS, "x"]), _JSON, max_size=6))
def test_arbitrary_json_objects_never_raise_and_accepted_values_fit(document: dict) -> None:
    import json

    result = lines.parse(json.dumps(document).encode(), FIELDS, "json")
    assert isinstance(result, dict | Rejected)
    if isinstance(result, dict):
        assert 0 <= result.get("pm25", 0) <= 1000
        assert result.keys() <= FIELDS.keys()
