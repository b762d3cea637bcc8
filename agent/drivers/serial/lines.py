"""A generic line protocol: one reading per line, as JSON or key=value pairs, mapped by configuration.

    {"pm25": 12.5, "temp": 21.0}        (line_format = "json")
    pm25=12.5,temp=21.0                 (line_format = "kv")

Only configured keys are read (others are ignored: sensors add diagnostics); each is checked against its
type and bounds. A line is all or nothing: one bad field refuses the whole reading, so the model never holds
half of a reading next to half of the previous one.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any, Literal

from ..common import Rejected
from .config import FieldMap

MAX_STRING = 1024
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_INTEGER = re.compile(r"-?\d{1,19}")
_INT_LIMITS = {"int": 2**31, "long": 2**63}
_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}

Values = dict[str, Any]  # configured key -> checked value


def parse(
    line: bytes, fields: Mapping[str, FieldMap], line_format: Literal["json", "kv"]
) -> Values | Rejected:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return Rejected("encoding", "not UTF-8")
    raw = _json(text) if line_format == "json" else _kv(text)
    if isinstance(raw, Rejected):
        return raw
    values: Values = {}
    for key, spec in fields.items():
        if key not in raw:
            continue
        checked = _check(key, raw[key], spec, from_text=line_format == "kv")
        if isinstance(checked, Rejected):
            return checked
        values[key] = checked
    if not values:
        return Rejected("unmapped", "no configured key in the line")
    return values


def _json(text: str) -> dict[str, Any] | Rejected:
    try:
        # parse_constant: JSON has no NaN/Infinity, Python's json accepts them unless told not to.
        document = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:
        return Rejected("format", f"not JSON: {type(error).__name__}")
    if not isinstance(document, dict):
        return Rejected("format", "not a JSON object")
    return document


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _kv(text: str) -> dict[str, str] | Rejected:
    pairs: dict[str, str] = {}
    for item in text.strip().split(","):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            return Rejected("format", "not key=value pairs")
        pairs[key.strip()] = value.strip()
    return pairs


def _check(key: str, value: Any, spec: FieldMap, *, from_text: bool) -> Any:
    if from_text:
        value = _from_text(value, spec.type)
        if value is None:
            return Rejected("type", f"{key}: not a {spec.type}")
    if spec.type == "string":
        if not isinstance(value, str) or len(value) > MAX_STRING:
            return Rejected("type", f"{key}: not a string of at most {MAX_STRING} characters")
        return value
    if spec.type == "boolean":
        return value if isinstance(value, bool) else Rejected("type", f"{key}: not a boolean")
    # Numbers: a bool is not a number, NaN and infinities are not readings.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return Rejected("type", f"{key}: not a number")
    if spec.type in _INT_LIMITS:
        limit = _INT_LIMITS[spec.type]
        if not isinstance(value, int) or not -limit <= value < limit:
            return Rejected("type", f"{key}: not a {spec.type}")
    else:
        try:
            value = float(value)  # an int of 400 digits overflows
        except OverflowError:
            value = math.inf
        if not math.isfinite(value):
            return Rejected("type", f"{key}: not a finite number")
    if (spec.min is not None and value < spec.min) or (spec.max is not None and value > spec.max):
        return Rejected("range", f"{key}: {value} outside [{spec.min}, {spec.max}]")
    return value


def _from_text(text: str, kind: str) -> Any:
    if kind == "string":
        return text
    if kind == "boolean":
        return _BOOLEANS.get(text.lower())
    if kind in _INT_LIMITS:
        return int(text) if _INTEGER.fullmatch(text) else None
    if not _NUMBER.fullmatch(text) or len(text) > 64:
        return None
    number = float(text)
    return number if math.isfinite(number) else None
