"""LDAP filters (RFC 4515 subset) over providers, as sensiNact's `filterLanguage=ldap` and legacy `ldap=`.

Grammar: `(&F...)`, `(|F...)`, `(!F)`, `(attr=value)`, `(attr~=value)`, `(attr>=value)`, `(attr<=value)`,
presence `(attr=*)` and substrings `(attr=ab*cd*)`. Values escape `\\XX` (two hex digits, RFC 4515) or
`\\c` (OSGi style). Errors name the position (0-based) where parsing failed.

Keys: `PROVIDER` (or legacy `name`) is the provider id; `MODEL` its model name (the provider id here);
`svc.res` is a resource's value, `res` that resource in any service, and `svc.res.value` /
`svc.res.<metadata>` (legacy) the value or a metadata attribute.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ...core.model import ProviderSnapshot

MAX_LENGTH = 8192
MAX_DEPTH = 64
APPROX_TOLERANCE = 1e-4


class LdapSyntaxError(ValueError):
    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at position {position}")
        self.position = position


# --- the tree ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class And:
    children: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Or:
    children: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Not:
    child: Filter


@dataclass(frozen=True, slots=True)
class Compare:
    key: str
    op: str  # "=", "~=", ">=", "<="
    value: str


@dataclass(frozen=True, slots=True)
class Present:
    key: str


@dataclass(frozen=True, slots=True)
class Substring:
    key: str
    pattern: re.Pattern[str]


Filter = And | Or | Not | Compare | Present | Substring


# --- the parser ----------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str, position: int | None = None) -> LdapSyntaxError:
        return LdapSyntaxError(message, self.pos if position is None else position)

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def expect(self, char: str) -> None:
        if self.pos >= len(self.text):
            raise self.fail(f"expected {char!r}, found the end of the filter")
        if self.text[self.pos] != char:
            raise self.fail(f"expected {char!r}, found {self.text[self.pos]!r}")
        self.pos += 1

    def filter(self, depth: int) -> Filter:
        if depth > MAX_DEPTH:
            raise self.fail(f"filter nested deeper than {MAX_DEPTH}")
        self.skip_spaces()
        self.expect("(")
        self.skip_spaces()
        if self.pos >= len(self.text):
            raise self.fail("unexpected end of the filter")
        char = self.text[self.pos]
        if char in "&|":
            self.pos += 1
            children = self.filter_list(depth)
            node: Filter = And(children) if char == "&" else Or(children)
        elif char == "!":
            self.pos += 1
            node = Not(self.filter(depth + 1))
        else:
            node = self.item()
        self.skip_spaces()
        self.expect(")")
        return node

    def filter_list(self, depth: int) -> tuple[Filter, ...]:
        children = []
        self.skip_spaces()
        while self.pos < len(self.text) and self.text[self.pos] == "(":
            children.append(self.filter(depth + 1))
            self.skip_spaces()
        if not children:
            raise self.fail("expected at least one '(' filter after '&' or '|'")
        return tuple(children)

    def item(self) -> Filter:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in "=~<>()":
            self.pos += 1
        key = self.text[start : self.pos].strip()
        if not key:
            raise self.fail("expected an attribute name", start)
        if self.pos >= len(self.text):
            raise self.fail("expected an operator (=, ~=, >=, <=), found the end of the filter")
        char = self.text[self.pos]
        if char in "~<>":
            self.pos += 1
            if self.pos >= len(self.text) or self.text[self.pos] != "=":
                raise self.fail(f"expected '=' after {char!r}")
            self.pos += 1
            value, wildcard = self.value()
            if wildcard:
                raise self.fail(f"'*' is not allowed with {char}=")
            return Compare(key, char + "=", value)
        if char != "=":
            raise self.fail(f"expected an operator (=, ~=, >=, <=), found {char!r}")
        self.pos += 1
        parts = self.substring_parts()
        if parts == ["", ""]:
            return Present(key)
        if len(parts) == 1:
            return Compare(key, "=", parts[0])
        regex = ".*".join(re.escape(part) for part in parts)
        return Substring(key, re.compile(regex, re.DOTALL))

    def substring_parts(self) -> list[str]:
        """The value split on unescaped '*'."""
        parts, current = [], []
        while self.pos < len(self.text) and self.text[self.pos] != ")":
            char = self.text[self.pos]
            if char == "(":
                raise self.fail("unescaped '(' in a value")
            if char == "*":
                parts.append("".join(current))
                current = []
                self.pos += 1
            elif char == "\\":
                current.append(self.escape())
            else:
                current.append(char)
                self.pos += 1
        parts.append("".join(current))
        return parts

    def value(self) -> tuple[str, bool]:
        parts = self.substring_parts()
        return "".join(parts), len(parts) > 1

    def escape(self) -> str:
        start = self.pos
        self.pos += 1  # the backslash
        hex_pair = self.text[self.pos : self.pos + 2]
        if len(hex_pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in hex_pair):
            self.pos += 2
            return chr(int(hex_pair, 16))
        if self.pos < len(self.text):  # OSGi style: \( \) \* \\ and any other character as itself
            self.pos += 1
            return self.text[self.pos - 1]
        raise self.fail("dangling '\\' at the end of the filter", start)


def parse(text: str) -> Filter:
    """Parses an LDAP filter; legacy clients quote it ('(a=b)') and the quotes are dropped."""
    if not isinstance(text, str):
        raise LdapSyntaxError("expected the filter as text", 0)
    if len(text) > MAX_LENGTH:
        raise LdapSyntaxError(f"filter longer than {MAX_LENGTH} characters", MAX_LENGTH)
    offset = 0
    stripped = text.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] == "'":
        offset = text.index("'") + 1
        text = stripped[1:-1]
    parser = _Parser(text)
    try:
        node = parser.filter(0)
        parser.skip_spaces()
        if parser.pos != len(text):
            raise parser.fail("unexpected text after the filter")
    except LdapSyntaxError as error:
        if offset:
            raise LdapSyntaxError(str(error).rsplit(" at position", 1)[0], error.position + offset) from None
        raise
    return node


# --- matching ------------------------------------------------------------------------------------------


def _values(provider: ProviderSnapshot, key: str) -> Iterator[Any] | None:
    """The values `key` names in this provider; None when it names nothing (then only `!` matches)."""
    upper = key.upper()
    if upper == "PROVIDER" or key == "name":
        return iter([provider.name])
    if upper == "MODEL":
        return iter([provider.name])
    if upper == "PACKAGE":
        return None
    found: list[Any] = []
    for service_name, service in provider.services.items():
        if key.startswith(service_name + "."):
            rest = key[len(service_name) + 1 :]
            if rest in service.resources:
                found.append(service.resources[rest].value)
                continue
            resource_name, _, attribute = rest.rpartition(".")
            resource = service.resources.get(resource_name)
            if resource is not None:
                if attribute == "value":
                    found.append(resource.value)
                elif attribute in resource.metadata:
                    found.append(resource.metadata[attribute])
        elif "." not in key and key in service.resources:
            found.append(service.resources[key].value)
    return iter(found) if found else None


def _as_number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _compare_one(actual: Any, op: str, expected: str) -> bool:
    if isinstance(actual, list | tuple):  # arrays match when any element does
        return any(_compare_one(item, op, expected) for item in actual)
    if actual is None:
        return op == "=" and expected.strip().lower() in {"false", "null"}
    if isinstance(actual, bool):
        lowered = expected.strip().lower()
        wanted = lowered == "true" or (_as_number(lowered) not in (None, 0.0))
        if lowered not in {"true", "false"} and _as_number(lowered) is None:
            return False
        return (
            actual == wanted if op in {"=", "~="} else (actual >= wanted if op == ">=" else actual <= wanted)
        )
    if isinstance(actual, int | float):
        number = _as_number(expected)
        if number is None:
            return False
        if op == "=":
            return actual == number
        if op == "~=":
            return abs(actual - number) <= APPROX_TOLERANCE
        return actual >= number if op == ">=" else actual <= number
    if isinstance(actual, str):
        if op == "=":
            return actual == expected
        if op == "~=":
            return "".join(actual.split()).lower() == "".join(expected.split()).lower()
        return actual >= expected if op == ">=" else actual <= expected
    return False  # objects (GeoJSON...) only answer presence


def matches(node: Filter, provider: ProviderSnapshot) -> bool:
    if isinstance(node, And):
        return all(matches(child, provider) for child in node.children)
    if isinstance(node, Or):
        return any(matches(child, provider) for child in node.children)
    if isinstance(node, Not):
        return not matches(node.child, provider)
    values = _values(provider, node.key)
    if values is None:
        return False
    if isinstance(node, Present):
        return any(value is not None for value in values)
    if isinstance(node, Substring):
        return any(
            isinstance(item, str) and node.pattern.fullmatch(item) is not None
            for value in values
            for item in (value if isinstance(value, list) else [value])
        )
    return any(_compare_one(value, node.op, node.value) for value in values)
