"""Request bodies of the access methods: `{"parameters":[{name,type,value}...]}` or a bare array.

Both generations' rules, as a union (the issue's decisions): SET takes one parameter (its value, whatever
its name) or `attributeName`="value" plus `value`; ACT takes named or positional ("0", "1"...) arguments,
not both; SUBSCRIBE takes `callback`, `conditions`, `policy`, `lifetime`; UNSUBSCRIBE `subscriptionId`.
Anything else is a 400 with a message saying what was expected.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ...core.model import Parameter
from .envelopes import RestError


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def parse_json(raw: bytes) -> Any:
    """The body as JSON; empty is None. Malformed, NaN/Infinity or too deep: 400 with the position."""
    if not raw.strip():
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RestError(400, f"Malformed JSON body: not UTF-8 (byte {error.start})") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise RestError(400, f"Malformed JSON body: {error.msg} at position {error.pos}") from None
    except ValueError as error:
        raise RestError(400, f"Malformed JSON body: {error}") from None
    except RecursionError:
        raise RestError(400, "Malformed JSON body: nested too deep") from None


@dataclass(frozen=True, slots=True)
class Param:
    name: str | None
    value: Any
    type: str | None = None


def parameters(body: Any) -> list[Param]:
    """The parameter list of a body: `{"parameters":[...]}`, `[...]` or nothing."""
    if body is None:
        return []
    if isinstance(body, Mapping):
        extra = sorted(set(body) - {"parameters"})
        if extra:
            raise RestError(400, f'Unexpected field {str(extra[0])[:40]!r}: expected {{"parameters": [...]}}')
        body = body.get("parameters", [])
    if not isinstance(body, list):
        raise RestError(400, 'Expected {"parameters": [{"name", "type", "value"}...]} or an array')
    result = []
    for index, item in enumerate(body):
        if not isinstance(item, Mapping) or "value" not in item:
            raise RestError(400, f"Parameter {index}: expected an object with a 'value'")
        name, type_ = item.get("name"), item.get("type")
        if name is not None and not isinstance(name, str):
            raise RestError(400, f"Parameter {index}: 'name' must be a string")
        if type_ is not None and not isinstance(type_, str):
            raise RestError(400, f"Parameter {index}: 'type' must be a string")
        result.append(Param(name, item["value"], type_))
    return result


def set_value(params: Sequence[Param]) -> Any:
    """The value a SET writes. Metadata cannot be set over REST."""
    if len(params) == 1:
        return params[0].value
    if len(params) == 2:
        by_name = {p.name: p for p in params}
        if set(by_name) == {"attributeName", "value"}:
            if by_name["attributeName"].value != "value":
                raise RestError(400, "Only the resource value can be set")
            return by_name["value"].value
        raise RestError(400, "SET with two parameters expects 'attributeName' and 'value'")
    raise RestError(400, f"SET expects one parameter (the value), got {len(params)}")


def act_arguments(params: Sequence[Param], declared: Sequence[Parameter]) -> dict[str, Any]:
    """Named arguments for the model; numeric names and unnamed parameters are positions."""
    positional = [p for p in params if p.name is None or p.name.isdigit()]
    if positional and len(positional) != len(params):
        raise RestError(400, "ACT parameters are either all named or all positional")
    if not positional:
        return {p.name: p.value for p in params}  # type: ignore[misc]
    if len(params) > len(declared):
        raise RestError(400, f"ACT takes at most {len(declared)} parameter(s), got {len(params)}")
    numbered = all(p.name is not None for p in params)
    ordered = sorted(params, key=lambda p: int(p.name or 0)) if numbered else list(params)
    return {declared[i].name: p.value for i, p in enumerate(ordered)}


@dataclass(frozen=True, slots=True)
class SubscribeRequest:
    callback: str
    conditions: list[Any]
    policy: str
    lifetime: float | None


POLICIES = ("CONTINUE", "STOP", "ROLLBACK", "IGNORE", "ALTERNATIVE", "LOG")


def _policy(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        raise RestError(400, "'policy' must be a name or an int")
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        raise RestError(400, "'policy' must be a name or an int")
    parts = [part.strip().upper() for part in value.split("|") if part.strip()]
    if not parts or any(part not in POLICIES for part in parts):
        raise RestError(400, f"'policy' must be made of {'|'.join(POLICIES)}")
    return "|".join(parts)


def subscribe_request(params: Sequence[Param]) -> SubscribeRequest:
    named = {p.name: p.value for p in params if p.name}
    callback = named.get("callback")
    if not isinstance(callback, str) or not callback:
        raise RestError(400, "SUBSCRIBE over HTTP needs a 'callback' URL (or use GET .../SUBSCRIBE for SSE)")
    conditions = named.get("conditions", [])
    if isinstance(conditions, Mapping):
        conditions = [conditions]
    if not isinstance(conditions, list):
        raise RestError(400, "'conditions' must be an array of {operator, operand, type, complement}")
    lifetime = named.get("lifetime")
    if lifetime is not None:
        if (
            isinstance(lifetime, bool)
            or not isinstance(lifetime, int | float)
            or not math.isfinite(lifetime)
            or lifetime <= 0
        ):
            raise RestError(400, "'lifetime' must be a positive number of seconds")
        lifetime = float(lifetime)
    policy = _policy(named["policy"]) if "policy" in named else "CONTINUE"
    return SubscribeRequest(callback, conditions, policy, lifetime)


def subscription_id(params: Sequence[Param]) -> str:
    if not params:
        raise RestError(400, "A Parameter was expected: 'subscriptionId'")
    named = {p.name: p.value for p in params}
    value = named.get("subscriptionId", params[0].value)
    if not isinstance(value, str) or not value:
        raise RestError(400, "'subscriptionId' must be a string")
    return value
