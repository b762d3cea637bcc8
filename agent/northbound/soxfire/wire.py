"""SOX (Sensor-over-XMPP) payloads: plain protocol objects and their XML, no I/O and no model.

What we emit follows the recommendations of the SOX research note (shared/reference/sox.md §1): the SOX
namespace on <device>/<data>, camelCase attributes, only attributes the XEP's tables name (Keio's Java
reader is strict), `unitScaler` spelling, numeric min/max, timestamps in UTC with milliseconds and 'Z'.
What we read is parsed leniently, as the Keio readers do: elements matched by local name whatever their
namespace, attribute names in any case, timestamps with any offset or none.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

NS = "http://jabber.org/protocol/sox"
META_SUFFIX = "_meta"
DATA_SUFFIX = "_data"

# The XEP's device types plus JSoxLib's two extras: Java readers throw on any other value.
DEVICE_TYPES = (
    "indoor weather",
    "outdoor weather",
    "hvac",
    "occupancy",
    "multimedia input",
    "multimedia output",
    "scale",
    "vehicle",
    "resource consumption",
    "resource generation",
    "other",
    "outdoor atmosphere",
    "participatory",
)


class WireError(ValueError):
    """A SOX payload that cannot be understood; the message says why, without echoing the payload."""


def meta_node(device: str) -> str:
    return device + META_SUFFIX


def data_node(device: str) -> str:
    return device + DATA_SUFFIX


# --- timestamps -------------------------------------------------------------------------------------------


def format_timestamp(unix: float) -> str:
    """XEP-0082 DateTime in UTC with milliseconds, e.g. 2024-05-01T03:04:05.123Z."""
    moment = datetime.fromtimestamp(unix, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


_TIMESTAMP = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?\s*(Z|z|[+-]\d\d(?::?\d\d)?)?"
)


def parse_timestamp(text: str) -> float:
    """Unix seconds from the variants SOX publishers produce: 'Z', '+09:00', '+0900', '+09' or no zone
    (taken as UTC), any number of fraction digits."""
    match = _TIMESTAMP.fullmatch(text.strip())
    if not match:
        raise WireError("timestamp is not an XEP-0082 DateTime")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    tz: timezone = UTC
    if zone and zone not in "Zz":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        tz = timezone(sign * offset)
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=tz)
    except ValueError:
        raise WireError("timestamp is out of range") from None
    return moment.timestamp() + (float("0." + fraction) if fraction else 0.0)


# --- values -----------------------------------------------------------------------------------------------


def format_value(value: Any) -> str:
    """typedValue text of a model value: JSON-like scalars, compact JSON for objects and arrays."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


_NUMERIC_TYPES = {"int", "long", "float", "double"}
_JSON_TYPES = {"object", "array", "geojson"}


def parse_value(text: str, type_name: str) -> Any:
    """A typedValue read back as a value of the given model type (the model still checks it)."""
    try:
        if type_name == "boolean":
            lowered = text.strip().lower()
            if lowered not in ("true", "false", "1", "0"):
                raise WireError("expected true or false")
            return lowered in ("true", "1")
        if type_name in ("int", "long"):
            number = float(text)
            return int(number) if number.is_integer() else number  # the model refuses 2.5 for an int
        if type_name in _NUMERIC_TYPES:
            number = float(text)
            if not math.isfinite(number):
                raise WireError("expected a finite number")
            return number
        if type_name in _JSON_TYPES:
            return json.loads(text)
    except (ValueError, OverflowError) as error:
        if isinstance(error, WireError):
            raise
        raise WireError(f"typedValue is not a valid {type_name}") from None
    return text


# --- protocol objects -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transducer:
    id: str
    name: str
    units: str = "none"
    type_name: str | None = None  # transducerTypeName: our model's value type, so a mirror keeps it
    min_value: float | None = None
    max_value: float | None = None
    can_actuate: bool = False


@dataclass(frozen=True, slots=True)
class Property:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class DeviceMeta:
    name: str
    id: str
    type: str = "other"
    timestamp: float | None = None
    description: str | None = None
    transducers: tuple[Transducer, ...] = ()
    properties: tuple[Property, ...] = ()


@dataclass(frozen=True, slots=True)
class TransducerValue:
    id: str
    typed_value: str
    timestamp: float
    raw_value: str | None = None


@dataclass(frozen=True, slots=True)
class TransducerSetValue:
    id: str
    typed_value: str
    raw_value: str | None = None


@dataclass(frozen=True, slots=True)
class Data:
    values: tuple[TransducerValue, ...] = ()
    set_values: tuple[TransducerSetValue, ...] = field(default=())


# --- building ---------------------------------------------------------------------------------------------


def _number(value: float) -> str:
    return repr(int(value)) if float(value).is_integer() and abs(value) < 2**53 else repr(float(value))


def build_meta(meta: DeviceMeta) -> ET.Element:
    attrs = {"name": meta.name, "id": meta.id, "type": meta.type}
    if meta.timestamp is not None:
        attrs["timestamp"] = format_timestamp(meta.timestamp)
    if meta.description:
        attrs["description"] = meta.description
    device = ET.Element(f"{{{NS}}}device", attrs)
    for t in meta.transducers:
        t_attrs = {
            "name": t.name,
            "id": t.id,
            "units": t.units,
            "canActuate": "true" if t.can_actuate else "false",
        }
        if t.type_name:
            t_attrs["transducerTypeName"] = t.type_name
        if t.min_value is not None:
            t_attrs["minValue"] = _number(t.min_value)
        if t.max_value is not None:
            t_attrs["maxValue"] = _number(t.max_value)
        ET.SubElement(device, f"{{{NS}}}transducer", t_attrs)
    for p in meta.properties:
        ET.SubElement(device, f"{{{NS}}}property", {"name": p.name, "value": p.value})
    return device


def build_data(values: Iterable[TransducerValue]) -> ET.Element:
    data = ET.Element(f"{{{NS}}}data")
    for v in values:
        attrs = {"id": v.id, "typedValue": v.typed_value}
        if v.raw_value is not None:
            attrs["rawValue"] = v.raw_value
        attrs["timestamp"] = format_timestamp(v.timestamp)
        ET.SubElement(data, f"{{{NS}}}transducerValue", attrs)
    return data


def build_set_value(values: Iterable[TransducerSetValue]) -> ET.Element:
    """An actuation request: <data> holding <transducerSetValue> (XEP §Setting Transducer Values)."""
    data = ET.Element(f"{{{NS}}}data")
    for v in values:
        attrs = {"id": v.id, "typedValue": v.typed_value}
        if v.raw_value is not None:
            attrs["rawValue"] = v.raw_value
        ET.SubElement(data, f"{{{NS}}}transducerSetValue", attrs)
    return data


_ATTR_ESCAPES = {'"': "&quot;", "'": "&apos;", "\n": "&#10;", "\r": "&#13;", "\t": "&#09;"}
DATA_OVERHEAD = len(f'<data xmlns="{NS}"></data>')


def _attr_size(text: str) -> int:
    return len(escape(text, _ATTR_ESCAPES).encode())


def value_size(value: TransducerValue) -> int:
    """Bytes one <transducerValue/> takes on the wire, computed without serialising: the batch splitter
    asks this for every reading, so it has to be cheap (and exact enough to stay under a limit)."""
    size = len('<transducerValue id="" typedValue="" timestamp="2024-05-01T03:04:05.123Z" />')
    size += _attr_size(value.id) + _attr_size(value.typed_value)
    if value.raw_value is not None:
        size += len(' rawValue=""') + _attr_size(value.raw_value)
    return size


# --- parsing ----------------------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].lower()


def _attrs(element: ET.Element) -> dict[str, str]:
    return {_local(k): v for k, v in element.attrib.items()}


def _children(element: ET.Element, name: str) -> Iterator[ET.Element]:
    return (child for child in element if _local(child.tag) == name)


def _float(attrs: dict[str, str], key: str) -> float | None:
    try:
        value = float(attrs[key])
    except (KeyError, ValueError):
        return None
    return value if math.isfinite(value) else None


def parse_meta(element: ET.Element) -> DeviceMeta:
    if _local(element.tag) != "device":
        raise WireError(f"expected <device>, got <{_local(element.tag)[:40]}>")
    attrs = _attrs(element)
    transducers = []
    for child in _children(element, "transducer"):
        t = _attrs(child)
        if not t.get("id"):
            raise WireError("a <transducer> has no id")
        transducers.append(
            Transducer(
                id=t["id"],
                name=t.get("name") or t["id"],
                units=t.get("units", "none"),
                type_name=t.get("transducertypename"),
                min_value=_float(t, "minvalue"),
                max_value=_float(t, "maxvalue"),
                can_actuate=t.get("canactuate", "false").strip().lower() == "true",
            )
        )
    properties = tuple(
        Property(p.get("name", ""), p.get("value", "")) for p in map(_attrs, _children(element, "property"))
    )
    timestamp = None
    if attrs.get("timestamp"):
        try:
            timestamp = parse_timestamp(attrs["timestamp"])
        except WireError:
            timestamp = None  # a bad device timestamp is no reason to refuse its transducer list
    return DeviceMeta(
        name=attrs.get("name", ""),
        id=attrs.get("id", ""),
        type=attrs.get("type", "other"),
        timestamp=timestamp,
        description=attrs.get("description"),
        transducers=tuple(transducers),
        properties=properties,
    )


def parse_data(element: ET.Element, *, now: float | None = None) -> Data:
    """A <data> item. A value without a timestamp gets `now` (JSoxLib marks only `id` as required)."""
    if _local(element.tag) != "data":
        raise WireError(f"expected <data>, got <{_local(element.tag)[:40]}>")
    values, set_values = [], []
    for child in element:
        kind, attrs = _local(child.tag), _attrs(child)
        if kind not in ("transducervalue", "transducersetvalue"):
            continue
        if not attrs.get("id"):
            raise WireError(f"a <{kind}> has no id")
        typed = attrs.get("typedvalue", attrs.get("rawvalue", ""))
        if kind == "transducersetvalue":
            set_values.append(TransducerSetValue(attrs["id"], typed, attrs.get("rawvalue")))
            continue
        stamp = attrs.get("timestamp")
        if stamp:
            timestamp = parse_timestamp(stamp)
        elif now is not None:
            timestamp = now
        else:
            raise WireError("a <transducerValue> has no timestamp")
        values.append(TransducerValue(attrs["id"], typed, timestamp, attrs.get("rawvalue")))
    return Data(tuple(values), tuple(set_values))


def parse_payload(text: str | bytes) -> ET.Element:
    """Parses an item payload received as text; readers in the wild un-escape first (sox.md §1.8)."""
    try:
        return ET.fromstring(text)
    except ET.ParseError:
        raise WireError("payload is not well-formed XML") from None
