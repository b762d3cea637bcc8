"""sensiNact resource selectors (`filterLanguage=resource.selector`, and the /snapshot body).

A selector is `{providers:[{modelUri, model, provider, location, resources:[R...]}], resources:[R...]}`,
R = `{service, resource, value:[V...]}`. A name selection is "text" or `{value, type: EXACT|REGEX|
REGEX_REGION, negate}`; a value selection is `{value, operation, negate, checkType: VALUE|SIZE|TIMESTAMP}`.
Several selectors are OR-ed. Unlike LDAP, a selector narrows which services and resources come back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ...core.model import ProviderSnapshot, ResourceSnapshot
from .patterns import ClientPattern, PatternError

OPERATIONS = (
    "EQUALS",
    "LESS_THAN",
    "GREATER_THAN",
    "LESS_THAN_OR_EQUAL",
    "GREATER_THAN_OR_EQUAL",
    "REGEX",
    "REGEX_REGION",
    "IS_SET",
    "IS_NOT_NULL",
)
MAX_SELECTORS = 64


class SelectorError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class NameSelection:
    value: str
    type: str = "EXACT"
    negate: bool = False
    pattern: ClientPattern | None = None

    def matches(self, name: str | None) -> bool:
        if name is None:
            result = False
        elif self.pattern is None:
            result = name == self.value
        elif self.type == "REGEX":
            result = self.pattern.fullmatch(name)
        else:
            result = self.pattern.search(name)
        return result != self.negate


@dataclass(frozen=True, slots=True)
class ValueSelection:
    value: Any
    operation: str = "EQUALS"
    negate: bool = False
    check: str = "VALUE"

    def matches(self, resource: ResourceSnapshot) -> bool:
        return self._test(resource) != self.negate

    def _test(self, resource: ResourceSnapshot) -> bool:
        if self.operation == "IS_SET":
            return resource.has_value
        if self.operation == "IS_NOT_NULL":
            return resource.value is not None
        if self.check == "SIZE":
            actual: Any = len(resource.value) if isinstance(resource.value, str | list | Mapping) else None
        elif self.check == "TIMESTAMP":
            actual = resource.timestamp * 1000 if resource.timestamp is not None else None
        else:
            actual = resource.value
        if actual is None:
            return self.operation == "EQUALS" and self.value is None
        if self.operation in ("REGEX", "REGEX_REGION"):
            try:
                pattern = ClientPattern(str(self.value))  # checked when the selector was parsed
            except PatternError:
                return False
            text = actual if isinstance(actual, str) else str(actual)
            return pattern.fullmatch(text) if self.operation == "REGEX" else pattern.search(text)
        expected = _expected(self.value, actual, self.check)
        if expected is None:
            return False
        try:
            return {
                "EQUALS": actual == expected,
                "LESS_THAN": actual < expected,
                "GREATER_THAN": actual > expected,
                "LESS_THAN_OR_EQUAL": actual <= expected,
                "GREATER_THAN_OR_EQUAL": actual >= expected,
            }[self.operation]
        except TypeError:  # e.g. an object compared with <
            return False


def _expected(value: Any, actual: Any, check: str) -> Any:
    """The selection's value in the actual value's terms (sensiNact sends them as text)."""
    if isinstance(actual, bool):
        return value if isinstance(value, bool) else str(value).lower() == "true"
    if isinstance(actual, int | float):
        if check == "TIMESTAMP" and isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000
            except ValueError:
                return None
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    if isinstance(actual, str):
        return value if isinstance(value, str) else None
    return value


@dataclass(frozen=True, slots=True)
class ResourceSelection:
    service: NameSelection | None
    resource: NameSelection | None
    values: tuple[ValueSelection, ...] = ()

    def matches(self, resource: ResourceSnapshot) -> bool:
        return (
            (self.service is None or self.service.matches(resource.service))
            and (self.resource is None or self.resource.matches(resource.name))
            and all(value.matches(resource) for value in self.values)
        )


@dataclass(frozen=True, slots=True)
class ProviderSelection:
    provider: NameSelection | None
    model: NameSelection | None
    resources: tuple[ResourceSelection, ...]


@dataclass(frozen=True, slots=True)
class Selector:
    providers: tuple[ProviderSelection, ...]
    resources: tuple[ResourceSelection, ...]


def _name(raw: Any, where: str) -> NameSelection | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        return NameSelection(raw)
    if not isinstance(raw, Mapping) or not isinstance(raw.get("value"), str):
        raise SelectorError(f"{where}: expected text or {{value, type, negate}}")
    kind = raw.get("type", "EXACT")
    negate = raw.get("negate", False)
    if kind not in ("EXACT", "REGEX", "REGEX_REGION") or not isinstance(negate, bool):
        raise SelectorError(f"{where}: type must be EXACT, REGEX or REGEX_REGION; negate a boolean")
    pattern = None
    if kind != "EXACT":
        try:
            pattern = ClientPattern(raw["value"])
        except PatternError as error:
            raise SelectorError(f"{where}: {error}") from None
    return NameSelection(raw["value"], kind, negate, pattern)


def _value(raw: Any, where: str) -> ValueSelection:
    if not isinstance(raw, Mapping):
        raise SelectorError(f"{where}: expected {{value, operation, negate, checkType}}")
    operation = raw.get("operation", "EQUALS")
    check = raw.get("checkType", "VALUE")
    negate = raw.get("negate", False)
    if (
        operation not in OPERATIONS
        or check not in ("VALUE", "SIZE", "TIMESTAMP")
        or not isinstance(negate, bool)
    ):
        raise SelectorError(
            f"{where}: operation one of {', '.join(OPERATIONS)}; checkType VALUE|SIZE|TIMESTAMP"
        )
    if operation in ("REGEX", "REGEX_REGION"):
        try:
            ClientPattern(str(raw.get("value")))
        except PatternError as error:
            raise SelectorError(f"{where}: {error}") from None
    return ValueSelection(raw.get("value"), operation, negate, check)


def _resources(raw: Any, where: str) -> tuple[ResourceSelection, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise SelectorError(f"{where}: expected an array")
    result = []
    for index, item in enumerate(raw):
        here = f"{where}[{index}]"
        if not isinstance(item, Mapping):
            raise SelectorError(f"{here}: expected {{service, resource, value}}")
        values = item.get("value") or []
        if not isinstance(values, list):
            values = [values]
        result.append(
            ResourceSelection(
                _name(item.get("service"), f"{here}.service"),
                _name(item.get("resource"), f"{here}.resource"),
                tuple(_value(v, f"{here}.value[{i}]") for i, v in enumerate(values)),
            )
        )
    return tuple(result)


def parse(raw: Any) -> tuple[Selector, ...]:
    """One selector (an object) or several (an array); raises SelectorError with where it went wrong."""
    items = raw if isinstance(raw, list) else [raw]
    if len(items) > MAX_SELECTORS:
        raise SelectorError(f"at most {MAX_SELECTORS} selectors")
    selectors = []
    for index, item in enumerate(items):
        where = f"selector[{index}]"
        if not isinstance(item, Mapping):
            raise SelectorError(f"{where}: expected an object {{providers, resources}}")
        providers = item.get("providers") or []
        if not isinstance(providers, list):
            raise SelectorError(f"{where}.providers: expected an array")
        parsed = []
        for p_index, provider in enumerate(providers):
            here = f"{where}.providers[{p_index}]"
            if not isinstance(provider, Mapping):
                raise SelectorError(f"{here}: expected {{provider, model, resources}}")
            parsed.append(
                ProviderSelection(
                    _name(provider.get("provider"), f"{here}.provider"),
                    _name(provider.get("model"), f"{here}.model"),
                    _resources(provider.get("resources"), f"{here}.resources"),
                )
            )
        selectors.append(Selector(tuple(parsed), _resources(item.get("resources"), f"{where}.resources")))
    return tuple(selectors)


def select(selectors: tuple[Selector, ...], provider: ProviderSnapshot) -> dict[str, set[str]] | None:
    """service -> selected resources of this provider; None when nothing of it is selected."""
    chosen: dict[str, set[str]] = {}
    for resource in provider.resources():
        if any(_selects(selector, provider, resource) for selector in selectors):
            chosen.setdefault(resource.service, set()).add(resource.name)
    return chosen or None


def _selects(selector: Selector, provider: ProviderSnapshot, resource: ResourceSnapshot) -> bool:
    if not selector.providers and not selector.resources:
        return True
    for selection in selector.providers:
        if (selection.provider is None or selection.provider.matches(provider.name)) and (
            selection.model is None or selection.model.matches(provider.name)
        ):
            rules = selection.resources or selector.resources
            if not rules or any(rule.matches(resource) for rule in rules):
                return True
    if not selector.providers:
        return any(rule.matches(resource) for rule in selector.resources)
    return False
