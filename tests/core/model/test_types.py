"""Value types refuse bad data at the door and normalise the rest; names are safe in URIs and topics."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType

import pytest

from agent.core.model.errors import InvalidName, InvalidValue, ModelError
from agent.core.model.types import (
    MAX_JSON_BYTES,
    MAX_JSON_DEPTH,
    MAX_STRING_LENGTH,
    VALUE_TYPES,
    ResourceKind,
    ValueMode,
    check_name,
    coerce_metadata,
    value_type,
)

INT, LONG = VALUE_TYPES["int"], VALUE_TYPES["long"]
FLOAT, DOUBLE = VALUE_TYPES["float"], VALUE_TYPES["double"]
BOOLEAN, STRING, INSTANT = VALUE_TYPES["boolean"], VALUE_TYPES["string"], VALUE_TYPES["instant"]
OBJECT, ARRAY, GEOJSON = VALUE_TYPES["object"], VALUE_TYPES["array"], VALUE_TYPES["geojson"]


def nested_list(depth: int) -> list:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value  # type: ignore[return-value]


# --- names -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "truck-7", "gps:lat", "x.y_z", "0sensor", "A" * 64])
def test_valid_names_are_returned_unchanged(name: str) -> None:
    assert check_name("provider", name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "a/b",
        "a b",
        " a",
        "A" * 65,
        "_a",
        "-a",
        ".a",
        "a#",
        "a+",
        "caf\u00e9",
        "truck\n",  # '$' matches before a final newline: the name must be matched to its very end
        "truck\nx",
    ],
)
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidName) as caught:
        check_name("provider", name)
    assert str(caught.value) == (
        f"invalid provider name {name!r}: expected 1-64 letters, digits, '_', '.', ':' or '-', "
        "starting with a letter or digit"
    )


@pytest.mark.parametrize("name", [None, 5, b"truck", ["truck"]])
def test_names_must_be_strings(name: object) -> None:
    with pytest.raises(InvalidName, match=r"^invalid service name "):
        check_name("service", name)


def test_a_long_invalid_name_is_shortened_in_the_message() -> None:
    with pytest.raises(InvalidName) as caught:
        check_name("resource", "/" * 10_000)
    assert len(str(caught.value)) < 200


def test_model_errors_are_also_standard_errors() -> None:
    # Northbounds catch ModelError; generic code may catch ValueError.
    assert issubclass(InvalidName, ModelError) and issubclass(InvalidName, ValueError)
    assert issubclass(InvalidValue, ModelError) and issubclass(InvalidValue, ValueError)


# --- kinds, modes, the registry --------------------------------------------------------------------


def test_kinds_and_modes_are_their_sensinact_names() -> None:
    assert [k.value for k in ResourceKind] == ["SENSOR", "STATE_VARIABLE", "PROPERTY", "ACTION"]
    assert [m.value for m in ValueMode] == ["MODIFIABLE", "UPDATABLE", "FIXED"]
    assert (ValueMode.MODIFIABLE.rws, ValueMode.UPDATABLE.rws, ValueMode.FIXED.rws) == ("RW", "RO", "RO")


def test_value_types_carry_their_java_names() -> None:
    assert {name: t.java_name for name, t in VALUE_TYPES.items()} == {
        "boolean": "java.lang.Boolean",
        "int": "java.lang.Integer",
        "long": "java.lang.Long",
        "float": "java.lang.Float",
        "double": "java.lang.Double",
        "string": "java.lang.String",
        "instant": "java.time.Instant",
        "object": "java.util.Map",
        "array": "java.util.List",
        "geojson": "org.eclipse.sensinact.gateway.geojson.GeoJsonObject",
    }
    assert repr(DOUBLE) == "ValueType(double)"
    assert value_type("double") is DOUBLE


@pytest.mark.parametrize("name", ["Double", "number", "", None, ["int"]])
def test_unknown_value_type_names_are_refused(name: object) -> None:
    with pytest.raises(InvalidValue) as caught:
        value_type(name)  # type: ignore[arg-type]
    assert str(caught.value) == (
        f"unknown value type {name!r}: expected one of "
        "boolean, int, long, float, double, string, instant, object, array, geojson"
    )


@pytest.mark.parametrize("name", list(VALUE_TYPES))
def test_none_means_no_value_for_every_type(name: str) -> None:
    assert VALUE_TYPES[name](None) is None


# --- boolean, integers, reals ----------------------------------------------------------------------


def test_boolean_accepts_only_booleans() -> None:
    assert BOOLEAN(True) is True and BOOLEAN(False) is False
    for bad in (1, 0, "true", 1.0):
        with pytest.raises(InvalidValue, match=r"^expected a boolean, got "):
            BOOLEAN(bad)


@pytest.mark.parametrize(
    ("vtype", "bits", "low", "high"),
    [(INT, 32, -(2**31), 2**31 - 1), (LONG, 64, -(2**63), 2**63 - 1)],
)
def test_integers_are_bounded_by_their_width(vtype, bits: int, low: int, high: int) -> None:
    assert vtype(low) == low and vtype(high) == high and vtype(0) == 0
    for outside in (low - 1, high + 1):
        with pytest.raises(InvalidValue) as caught:
            vtype(outside)
        assert str(caught.value) == f"expected a {bits}-bit integer, got {outside} (out of range)"


@pytest.mark.parametrize("vtype", [INT, LONG])
def test_bool_is_not_an_integer(vtype) -> None:
    with pytest.raises(InvalidValue) as caught:
        vtype(True)
    assert "integer, got bool True" in str(caught.value)


def test_integral_floats_become_ints_and_fractions_are_refused() -> None:
    result = INT(3.0)
    assert result == 3 and type(result) is int
    for bad in (3.5, "3", float("nan"), float("inf"), [3]):
        with pytest.raises(InvalidValue, match=r"^expected a 32-bit integer, got "):
            INT(bad)
    with pytest.raises(InvalidValue, match=r"out of range"):
        INT(1e10)


@pytest.mark.parametrize("vtype", [FLOAT, DOUBLE])
def test_reals_accept_ints_as_floats(vtype) -> None:
    result = vtype(2)
    assert result == 2.0 and type(result) is float
    assert vtype(-0.25) == -0.25


@pytest.mark.parametrize("vtype", [FLOAT, DOUBLE])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_reals_refuse_nan_and_infinity(vtype, bad: float) -> None:
    with pytest.raises(InvalidValue) as caught:
        vtype(bad)
    assert str(caught.value) == f"expected a finite number, got {bad!r}"


@pytest.mark.parametrize("vtype", [FLOAT, DOUBLE])
@pytest.mark.parametrize("bad", [True, "1.5", {}, [1.0]])
def test_reals_refuse_non_numbers(vtype, bad: object) -> None:
    with pytest.raises(InvalidValue, match=r"^expected a number, got "):
        vtype(bad)


def test_float_is_32_bit_and_double_is_64_bit() -> None:
    assert FLOAT(3.4e38) == 3.4e38
    with pytest.raises(InvalidValue) as caught:
        FLOAT(3.5e38)
    assert str(caught.value) == "expected a 32-bit float, got 3.5e+38 (out of range)"
    assert DOUBLE(3.5e38) == 3.5e38
    assert DOUBLE(1.7e308) == 1.7e308


@pytest.mark.parametrize("vtype", [FLOAT, DOUBLE])
def test_an_int_too_large_for_any_float_is_an_invalid_value(vtype) -> None:
    # float(10**400) raises OverflowError, which must not escape as a non-model error.
    with pytest.raises(InvalidValue) as caught:
        vtype(10**400)
    assert str(caught.value) == "expected a finite number, got an integer too large for a float"


# --- strings ---------------------------------------------------------------------------------------


def test_strings_are_bounded() -> None:
    assert STRING("") == ""
    assert STRING("x" * MAX_STRING_LENGTH) == "x" * MAX_STRING_LENGTH
    with pytest.raises(InvalidValue) as caught:
        STRING("x" * (MAX_STRING_LENGTH + 1))
    assert str(caught.value) == (
        f"expected a string of at most {MAX_STRING_LENGTH} characters, got {MAX_STRING_LENGTH + 1}"
    )


@pytest.mark.parametrize("bad", [1, b"bytes", True, ["a"]])
def test_strings_refuse_other_types(bad: object) -> None:
    with pytest.raises(InvalidValue, match=r"^expected a string, got "):
        STRING(bad)


def test_the_shown_value_in_an_error_is_shortened() -> None:
    with pytest.raises(InvalidValue) as caught:
        STRING(["x" * 1000])
    message = str(caught.value)
    assert message.startswith("expected a string, got list ['xxx") and message.endswith("...")
    assert len(message) < 120


# --- JSON objects and arrays -----------------------------------------------------------------------


def test_objects_and_arrays_are_private_copies() -> None:
    given = {"a": [1, {"b": None}], "c": "d"}
    result = OBJECT(given)
    assert result == given and result is not given and result["a"] is not given["a"]
    given["a"][1]["b"] = "changed"
    assert result["a"][1]["b"] is None

    items = [1, 2.5, "x", True, None]
    copied = ARRAY(items)
    assert copied == items and copied is not items


def test_tuples_and_read_only_mappings_become_plain_json() -> None:
    assert ARRAY((1, (2, 3))) == [1, [2, 3]]
    assert OBJECT(MappingProxyType({"a": MappingProxyType({"b": 1})})) == {"a": {"b": 1}}


def test_object_and_array_refuse_each_other() -> None:
    with pytest.raises(InvalidValue, match=r"^expected a JSON object, got list"):
        OBJECT([1])
    with pytest.raises(InvalidValue, match=r"^expected a JSON array, got dict"):
        ARRAY({"a": 1})
    with pytest.raises(InvalidValue, match=r"^expected a JSON array, got str"):
        ARRAY("abc")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"a": float("nan")}, "expected finite numbers, got nan"),
        ({"a": [float("inf")]}, "expected finite numbers, got inf"),
        ({1: "a"}, "expected string object keys, got int"),
        ({"a": {1, 2}}, "expected a JSON value, got set {1, 2}"),
        ({"a": b"x"}, "expected a JSON value, got bytes b'x'"),
        ({"a": datetime(2024, 1, 1, tzinfo=UTC)}, "expected a JSON value, got datetime "),
    ],
)
def test_objects_refuse_what_json_cannot_hold(bad: dict, message: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        OBJECT(bad)
    assert str(caught.value).startswith(message)


def test_json_size_is_bounded() -> None:
    overhead = len('{"a":""}')
    fits = {"a": "x" * (MAX_JSON_BYTES - overhead)}
    assert OBJECT(fits) == fits
    with pytest.raises(InvalidValue) as caught:
        OBJECT({"a": "x" * (MAX_JSON_BYTES - overhead + 1)})
    assert str(caught.value) == f"expected at most {MAX_JSON_BYTES} bytes of JSON, got {MAX_JSON_BYTES + 1}"


def test_json_size_counts_bytes_of_non_ascii_text() -> None:
    # Escaped as \uXXXX: six bytes each, so a third of the limit in characters is already too much.
    with pytest.raises(InvalidValue, match=r"bytes of JSON"):
        OBJECT({"a": "\u00e9" * (MAX_JSON_BYTES // 3)})


def test_json_nesting_is_bounded() -> None:
    assert ARRAY(nested_list(MAX_JSON_DEPTH)) == nested_list(MAX_JSON_DEPTH)
    with pytest.raises(InvalidValue) as caught:
        ARRAY(nested_list(MAX_JSON_DEPTH + 1))
    assert str(caught.value) == f"expected JSON nested at most {MAX_JSON_DEPTH} deep"
    with pytest.raises(InvalidValue, match=r"nested at most"):
        ARRAY(nested_list(100_000))  # far deeper than the interpreter's recursion limit


def test_a_self_referencing_value_is_refused_not_looped_on() -> None:
    loop: list = []
    loop.append(loop)
    with pytest.raises(InvalidValue, match=r"nested at most"):
        ARRAY(loop)


# --- instants --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (datetime(2024, 5, 1, 12, 0, tzinfo=UTC), "2024-05-01T12:00:00.000Z"),
        (datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))), "2024-05-01T12:00:00.000Z"),
        (0, "1970-01-01T00:00:00.000Z"),
        (1.5, "1970-01-01T00:00:01.500Z"),
        (1714564800, "2024-05-01T12:00:00.000Z"),
        ("2024-05-01T12:00:00Z", "2024-05-01T12:00:00.000Z"),
        ("2024-05-01T12:00:00.123456+00:00", "2024-05-01T12:00:00.123Z"),
        ("2024-05-01T09:00:00-03:00", "2024-05-01T12:00:00.000Z"),
    ],
)
def test_instants_become_utc_iso_text_with_milliseconds(given: object, expected: str) -> None:
    assert INSTANT(given) == expected


def test_an_instant_is_stable_once_normalised() -> None:
    text = INSTANT("2024-05-01T12:00:00.5+01:00")
    assert INSTANT(text) == text == "2024-05-01T11:00:00.500Z"


@pytest.mark.parametrize("naive", [datetime(2024, 5, 1, 12, 0), "2024-05-01T12:00:00", "2024-05-01"])
def test_naive_instants_are_refused(naive: object) -> None:
    with pytest.raises(InvalidValue) as caught:
        INSTANT(naive)
    assert str(caught.value) == f"expected an instant with a time zone, got {naive!r}"


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("yesterday", "expected an ISO-8601 instant, got str 'yesterday'"),
        ("2024-13-01T00:00:00Z", "expected an ISO-8601 instant, got str '2024-13-01T00:00:00Z'"),
        (True, "expected an instant, got bool True"),
        ([2024], "expected an instant, got list [2024]"),
        (float("nan"), "expected a finite epoch time, got nan"),
        (float("inf"), "expected a finite epoch time, got inf"),
    ],
)
def test_bad_instants_are_refused(bad: object, message: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        INSTANT(bad)
    assert str(caught.value) == message


@pytest.mark.parametrize(
    "bad", [1e12, 1e20, -1e20, 10**30, "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]
)
def test_instants_outside_the_representable_range_are_invalid_values(bad: object) -> None:
    # datetime raises OverflowError/ValueError/OSError for these; a model error must come out instead.
    with pytest.raises(InvalidValue, match=r"^expected an instant in the years 1-9999, got "):
        INSTANT(bad)


# --- GeoJSON ---------------------------------------------------------------------------------------

POINT = {"type": "Point", "coordinates": [139.69, 35.69]}
POLYGON = {
    "type": "Polygon",
    "coordinates": [[[139.0, 35.0], [140.0, 35.0], [140.0, 36.0], [139.0, 35.0]]],
}


@pytest.mark.parametrize(
    "valid",
    [
        POINT,
        {"type": "Point", "coordinates": [139.69, 35.69, 40.0]},
        {"type": "Point", "coordinates": [-180, -90]},
        {"type": "Point", "coordinates": [180, 90]},
        POLYGON,
        {"type": "MultiPoint", "coordinates": [[1, 2], [3, 4]]},
        {"type": "LineString", "coordinates": [[1, 2], [3, 4]]},
        {"type": "MultiLineString", "coordinates": [[[1, 2], [3, 4]]]},
        {"type": "MultiPolygon", "coordinates": [POLYGON["coordinates"]]},
        {"type": "GeometryCollection", "geometries": [POINT, POLYGON]},
        {"type": "Feature", "geometry": POINT, "properties": {"name": "depot"}},
        {"type": "Feature", "geometry": None, "properties": None},
        {"type": "FeatureCollection", "features": []},
        {
            "type": "FeatureCollection",
            "features": [{"type": "Feature", "geometry": POLYGON, "properties": {}}],
        },
    ],
)
def test_valid_geojson_is_accepted_as_a_copy(valid: dict) -> None:
    result = GEOJSON(valid)
    assert result == valid and result is not valid


def test_legacy_clients_may_send_geojson_as_text() -> None:
    assert GEOJSON(json.dumps(POINT)) == POINT


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"type": "Point", "coordinates": [181, 0]}, "expected longitude in [-180, 180] and latitude"),
        ({"type": "Point", "coordinates": [0, -90.5]}, "expected longitude in [-180, 180] and latitude"),
        ({"type": "Point", "coordinates": [35.69, 139.69]}, "got [35.69, 139.69]"),  # lat/lon swapped
        ({"type": "Point", "coordinates": [1]}, "expected a GeoJSON position"),
        ({"type": "Point", "coordinates": [1, 2, 3, 4]}, "expected a GeoJSON position"),
        ({"type": "Point", "coordinates": ["1", "2"]}, "expected numeric GeoJSON coordinates"),
        ({"type": "Point", "coordinates": [True, 2]}, "expected numeric GeoJSON coordinates"),
        ({"type": "Point"}, "expected a GeoJSON position"),
        ({"type": "Polygon", "coordinates": [[1, 2]]}, "expected a GeoJSON position"),
        (
            {"type": "Polygon", "coordinates": [1, 2]},
            "expected nested coordinate arrays for a GeoJSON Polygon",
        ),
        (
            {"type": "Polygon", "coordinates": [[[0, 0], [200, 0], [0, 1], [0, 0]]]},
            "expected longitude in [-180, 180]",
        ),
        ({"type": "Circle", "coordinates": [0, 0]}, "expected a GeoJSON type, got 'Circle'"),
        ({"coordinates": [0, 0]}, "expected a GeoJSON object with a 'type'"),
        ({"type": 5}, "expected a GeoJSON object with a 'type'"),
        ({"type": "Feature", "geometry": {"type": "Point", "coordinates": [0, 91]}}, "latitude in [-90, 90]"),
        ({"type": "Feature", "geometry": [0, 0]}, "expected a GeoJSON object with a 'type'"),
        ({"type": "FeatureCollection"}, "expected 'features' in a GeoJSON FeatureCollection"),
        ({"type": "FeatureCollection", "features": [POINT, {"type": "Nope"}]}, "got 'Nope'"),
        ({"type": "GeometryCollection", "geometries": {}}, "expected 'geometries' in a GeoJSON"),
        ({"type": "Point", "coordinates": [float("nan"), 0]}, "expected finite numbers, got nan"),
    ],
)
def test_invalid_geojson_is_refused(bad: dict, message: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        GEOJSON(bad)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("not json", "expected GeoJSON, got str 'not json'"),
        ('{"type": "Point", "coordinates": [0, 100]}', "latitude in [-90, 90], got [0, 100]"),
        ("[1, 2]", "expected a JSON object, got list [1, 2]"),
        ('{"type": "Point", "coordinates": [NaN, 0]}', "expected finite numbers, got nan"),
        # Deeper than the JSON parser's recursion limit: a RecursionError must not escape.
        ("[" * 100_000, "expected GeoJSON, got str '[[[["),
        (42, "expected a JSON object, got int 42"),
    ],
)
def test_invalid_legacy_geojson_text_is_refused(bad: object, message: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        GEOJSON(bad)
    assert message in str(caught.value)


def test_geojson_is_bounded_like_any_json() -> None:
    huge = {"type": "Feature", "geometry": POINT, "properties": {"blob": "x" * MAX_JSON_BYTES}}
    with pytest.raises(InvalidValue, match=r"bytes of JSON"):
        GEOJSON(huge)


# --- metadata --------------------------------------------------------------------------------------


def test_metadata_is_copied_and_checked() -> None:
    given = {"unit": "degC", "min": -40, "max": 85.5, "tags": ["a"]}
    result = coerce_metadata(given)
    assert result == given and result is not given and result["tags"] is not given["tags"]


def test_metadata_keys_are_names() -> None:
    with pytest.raises(InvalidName, match=r"^invalid metadata name 'bad key'"):
        coerce_metadata({"bad key": 1})
    with pytest.raises(InvalidName, match=r"^invalid metadata name 1"):
        coerce_metadata({1: 1})


def test_metadata_values_are_json() -> None:
    with pytest.raises(InvalidValue, match=r"expected finite numbers, got inf"):
        coerce_metadata({"max": math.inf})
    with pytest.raises(InvalidValue, match=r"^expected a metadata object, got list"):
        coerce_metadata([("unit", "m")])  # type: ignore[arg-type]
