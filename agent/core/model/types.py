"""Typed values of the model: resource kinds, value modes and value types.

Values are kept as plain JSON-compatible Python objects so that every northbound (REST, SOX, MQTT, the
status page) can serialise them without knowing the type system; the types check and normalise on the way
in, which is the only place bad data can enter.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from .errors import InvalidName, InvalidValue

# Names appear in URIs (/sensinact/{p}/{s}/{r}), MQTT topics and XMPP node names: no '/', '#', '+', spaces.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")

MAX_STRING_LENGTH = 65_536
MAX_JSON_BYTES = 262_144
MAX_JSON_DEPTH = 32


def check_name(what: str, name: object) -> str:
    # fullmatch, not match: '$' also matches before a final newline, so "truck\n" would pass.
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        shown = repr(name)[:80]
        raise InvalidName(
            f"invalid {what} name {shown}: expected 1-64 letters, digits, '_', '.', ':' or '-', "
            "starting with a letter or digit"
        )
    return name


class ResourceKind(StrEnum):
    SENSOR = "SENSOR"
    STATE_VARIABLE = "STATE_VARIABLE"
    PROPERTY = "PROPERTY"
    ACTION = "ACTION"


class ValueMode(StrEnum):
    """sensiNact's value modes. MODIFIABLE: northbounds may SET it. UPDATABLE: only its driver writes it.
    FIXED: set once by declaration, never changed."""

    MODIFIABLE = "MODIFIABLE"
    UPDATABLE = "UPDATABLE"
    FIXED = "FIXED"

    @property
    def rws(self) -> str:
        return "RW" if self is ValueMode.MODIFIABLE else "RO"


@dataclass(frozen=True, slots=True)
class ValueType:
    """A value type: its short (seed) name, its Java name (current sensiNact) and its checker."""

    name: str
    java_name: str
    coerce: Callable[[Any], Any]

    def __call__(self, value: Any) -> Any:
        if value is None:
            return None  # "no value set" is valid for every type
        return self.coerce(value)

    def __repr__(self) -> str:
        return f"ValueType({self.name})"


def _fail(expected: str, value: Any) -> InvalidValue:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return InvalidValue(f"expected {expected}, got {type(value).__name__} {shown}")


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    raise _fail("a boolean", value)


def _integer(bits: int) -> Callable[[Any], int]:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def coerce(value: Any) -> int:
        if isinstance(value, bool):
            raise _fail(f"a {bits}-bit integer", value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise _fail(f"a {bits}-bit integer", value)
        if not low <= value <= high:
            raise InvalidValue(f"expected a {bits}-bit integer, got {value} (out of range)")
        return value

    return coerce


def _real(bits: int) -> Callable[[Any], float]:
    def coerce(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail("a number", value)
        try:
            result = float(value)
        except OverflowError:  # an int beyond any double (10**400): a model error, not a crash
            raise InvalidValue("expected a finite number, got an integer too large for a float") from None
        # JSON, XML Schema doubles in SOX and Prometheus disagree on NaN/inf: refuse them at the door.
        if not math.isfinite(result):
            raise InvalidValue(f"expected a finite number, got {value!r}")
        if bits == 32 and abs(result) > 3.4028234663852886e38:
            raise InvalidValue(f"expected a 32-bit float, got {value!r} (out of range)")
        return result

    return coerce


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise _fail("a string", value)
    if len(value) > MAX_STRING_LENGTH:
        raise InvalidValue(f"expected a string of at most {MAX_STRING_LENGTH} characters, got {len(value)}")
    return value


def _check_json(value: Any, depth: int = 0) -> None:
    if depth > MAX_JSON_DEPTH:
        raise InvalidValue(f"expected JSON nested at most {MAX_JSON_DEPTH} deep")
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidValue(f"expected string object keys, got {type(key).__name__}")
            _check_json(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_json(item, depth + 1)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidValue(f"expected finite numbers, got {value!r}")
    elif value is not None and not isinstance(value, str | int | bool):
        raise _fail("a JSON value", value)


def _plain_mapping(value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):  # read-only views (MappingProxyType) of other snapshots
        return dict(value)
    raise InvalidValue(f"expected a JSON value, got {type(value).__name__}")


def _json_copy(value: Any) -> Any:
    """Checks that a value is plain JSON of bounded size and returns a private deep copy of it."""
    _check_json(value)
    text = json.dumps(value, separators=(",", ":"), allow_nan=False, default=_plain_mapping)
    if len(text) > MAX_JSON_BYTES:
        raise InvalidValue(f"expected at most {MAX_JSON_BYTES} bytes of JSON, got {len(text)}")
    return json.loads(text)


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail("a JSON object", value)
    return _json_copy(value)


def _array(value: Any) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise _fail("a JSON array", value)
    return _json_copy(value)


def _instant(value: Any) -> str:
    """Instants are kept as ISO-8601 UTC text with milliseconds, the form sensiNact and SOX both print."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise InvalidValue(f"expected a finite epoch time, got {value!r}")
        try:
            moment = datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):  # past year 9999 or the platform's time_t
            raise InvalidValue(f"expected an instant in the years 1-9999, got {value!r}") from None
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise _fail("an ISO-8601 instant", value) from None
    else:
        raise _fail("an instant", value)
    if moment.tzinfo is None:
        raise InvalidValue(f"expected an instant with a time zone, got {value!r}")
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is before year 1 once in UTC
        raise InvalidValue(f"expected an instant in the years 1-9999, got {value!r}") from None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_GEOMETRIES = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon"}


def _check_position(position: Any) -> None:
    if not isinstance(position, list) or not 2 <= len(position) <= 3:
        raise InvalidValue("expected a GeoJSON position [longitude, latitude(, altitude)]")
    for number in position:
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise InvalidValue("expected numeric GeoJSON coordinates")
    lon, lat = position[0], position[1]
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidValue(f"expected longitude in [-180, 180] and latitude in [-90, 90], got [{lon}, {lat}]")


def _check_coordinates(kind: str, coordinates: Any) -> None:
    nesting = {
        "Point": 0,
        "MultiPoint": 1,
        "LineString": 1,
        "MultiLineString": 2,
        "Polygon": 2,
        "MultiPolygon": 3,
    }[kind]

    def walk(node: Any, level: int) -> None:
        if level == 0:
            _check_position(node)
            return
        if not isinstance(node, list):
            raise InvalidValue(f"expected nested coordinate arrays for a GeoJSON {kind}")
        for child in node:
            walk(child, level - 1)

    walk(coordinates, nesting)


def _check_geojson(obj: Any, depth: int = 0) -> None:
    if not isinstance(obj, dict) or not isinstance(obj.get("type"), str):
        raise InvalidValue("expected a GeoJSON object with a 'type'")
    kind = obj["type"]
    if kind in _GEOMETRIES:
        _check_coordinates(kind, obj.get("coordinates"))
    elif kind == "GeometryCollection":
        geometries = obj.get("geometries")
        if not isinstance(geometries, list):
            raise InvalidValue("expected 'geometries' in a GeoJSON GeometryCollection")
        for geometry in geometries:
            _check_geojson(geometry, depth + 1)
    elif kind == "Feature":
        if obj.get("geometry") is not None:
            _check_geojson(obj["geometry"], depth + 1)
    elif kind == "FeatureCollection":
        features = obj.get("features")
        if not isinstance(features, list):
            raise InvalidValue("expected 'features' in a GeoJSON FeatureCollection")
        for feature in features:
            _check_geojson(feature, depth + 1)
    else:
        raise InvalidValue(f"expected a GeoJSON type, got {kind[:40]!r}")


def _geojson(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        # Legacy M-Sec clients SET the location as GeoJSON text.
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):  # RecursionError: text nested deeper than the parser goes
            raise _fail("GeoJSON", value) from None
    obj = _object(value)
    _check_geojson(obj)
    return obj


VALUE_TYPES: dict[str, ValueType] = {
    t.name: t
    for t in (
        ValueType("boolean", "java.lang.Boolean", _boolean),
        ValueType("int", "java.lang.Integer", _integer(32)),
        ValueType("long", "java.lang.Long", _integer(64)),
        ValueType("float", "java.lang.Float", _real(32)),
        ValueType("double", "java.lang.Double", _real(64)),
        ValueType("string", "java.lang.String", _string),
        ValueType("instant", "java.time.Instant", _instant),
        ValueType("object", "java.util.Map", _object),
        ValueType("array", "java.util.List", _array),
        ValueType("geojson", "org.eclipse.sensinact.gateway.geojson.GeoJsonObject", _geojson),
    )
}


def value_type(name: str) -> ValueType:
    try:
        return VALUE_TYPES[name]
    except (KeyError, TypeError):
        raise InvalidValue(f"unknown value type {name!r}: expected one of {', '.join(VALUE_TYPES)}") from None


def coerce_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata is free-form JSON keyed by names (unit, description, min, max, ...)."""
    if not isinstance(metadata, Mapping):
        raise _fail("a metadata object", metadata)
    for key in metadata:
        check_name("metadata", key)
    return _json_copy(metadata)
