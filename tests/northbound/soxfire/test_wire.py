"""SOX XML: what we build, what we read (leniently), and bad input refused with a clear error."""

from __future__ import annotations

import pytest
from slixmpp.xmlstream import tostring

from agent.northbound.soxfire.mapping import model_name, split_transducer_id
from agent.northbound.soxfire.publisher import split_values
from agent.northbound.soxfire.wire import (
    DATA_OVERHEAD,
    DeviceMeta,
    Transducer,
    TransducerValue,
    WireError,
    build_data,
    build_meta,
    format_timestamp,
    format_value,
    parse_data,
    parse_meta,
    parse_payload,
    parse_timestamp,
    parse_value,
    value_size,
)


def test_timestamps_are_utc_milliseconds_z_and_parsed_leniently() -> None:
    assert format_timestamp(1714532645.1239) == "2024-05-01T03:04:05.123Z"
    assert parse_timestamp("2024-05-01T03:04:05.123Z") == pytest.approx(1714532645.123)
    assert parse_timestamp("2017-12-06T10:00:00+09:00") == parse_timestamp("2017-12-06T01:00:00Z")
    assert parse_timestamp("2014-05-14T16:33:32.778352+0900") == pytest.approx(1400052812.778352)
    assert parse_timestamp("2017-12-06T10:00:00") == parse_timestamp("2017-12-06T10:00:00Z")
    for bad in ("yesterday", "2024-13-01T00:00:00Z", "2024-05-01T03:04:05Z\n<x/>"):
        with pytest.raises(WireError):
            parse_timestamp(bad)


def test_meta_round_trip_uses_the_xep_spelling() -> None:
    meta = DeviceMeta(
        "truck1",
        "truck1",
        "vehicle",
        1.0,
        transducers=(
            Transducer("env/t", "t", "degC", "double", -40, 85.5, False),
            Transducer("ctl/x", "x", can_actuate=True),
        ),
    )
    xml = tostring(build_meta(meta))
    assert (
        'xmlns="http://jabber.org/protocol/sox"' in xml
        and 'minValue="-40"' in xml
        and 'maxValue="85.5"' in xml
    )
    assert 'canActuate="true"' in xml and "unitScalar" not in xml
    back = parse_meta(parse_payload(xml))
    assert back.transducers == meta.transducers and back.type == "vehicle"


def test_data_is_read_by_local_name_in_any_case() -> None:
    # As some publishers in the wild send it: no namespace, lowercase attributes, an offset timestamp.
    xml = '<data><transducervalue id="t" typedvalue="1.5" timestamp="2024-05-01T12:04:05+09:00"/><x/></data>'
    data = parse_data(parse_payload(xml))
    assert data.values == (TransducerValue("t", "1.5", parse_timestamp("2024-05-01T03:04:05Z")),)


@pytest.mark.parametrize("xml", ["<data><transducerValue typedValue='1'/></data>", "<device/>", "<data>"])
def test_bad_payloads_are_refused_clearly(xml: str) -> None:
    with pytest.raises(WireError):
        parse_data(parse_payload(xml))


def test_values_as_text_and_back() -> None:
    assert [format_value(v) for v in (True, 3, 2.5, "a", {"k": [1]}, None)] == [
        "true",
        "3",
        "2.5",
        "a",
        '{"k":[1]}',
        "",
    ]
    assert parse_value("true", "boolean") is True and parse_value("3", "int") == 3
    assert parse_value("2.5", "double") == 2.5 and parse_value('{"k":1}', "object") == {"k": 1}
    for text, type_name in (("maybe", "boolean"), ("nan", "double"), ("x", "int"), ("{", "object")):
        with pytest.raises(WireError):
            parse_value(text, type_name)


def test_value_size_never_underestimates_the_wire() -> None:
    values = [
        TransducerValue("a/b", "x\"<&'" * i, 1.0, '{"uid":"e-' + str(i) + '","sealed":"{\\"v\\":1}"}')
        for i in range(50)
    ]
    exact = len(tostring(build_data(values)).encode())
    assert exact <= DATA_OVERHEAD + sum(map(value_size, values)) <= exact * 1.05


def test_split_values_stays_under_the_limit_and_keeps_order() -> None:
    values = [(str(i), TransducerValue("a/b", str(i), 1.0, "r" * 100)) for i in range(100)]
    items = split_values(values, 2000)
    assert [v for item in items for v in item] == values
    assert all(DATA_OVERHEAD + sum(value_size(v) for _, v in item) <= 2000 for item in items)


def test_names_map_both_ways() -> None:
    assert split_transducer_id("env/temperature") == ("env", "temperature")
    assert split_transducer_id("temperature") == ("sox", "temperature")
    odd = model_name("河川カメラ 富士見橋付近(茅ヶ崎市)")
    assert odd != model_name("河川カメラ 富士見橋付近(茅ヶ崎)") and len(odd) <= 64
