"""Legacy subscription conditions: `[{operator, operand, type, complement}]`, all of which must hold.

Operators (legacy `common.constraint`): `<` `<=` `>` `>=` `=` `!=` compare; `regex` matches the whole text;
`in` holds when the value is one of the operand's items (or, for an array value, contains the operand);
`len`, `+`, `-` check an exact, minimum or maximum length; `abs` holds when |value - reference| >= delta and
`diff` when the change exceeds delta percent (operand `delta`, or `[delta, reference]`; without a reference
the previously notified value is the reference); `changed` holds when the value differs from the previous
one. `complement: true` negates a condition. A condition that cannot be evaluated (a text for `<`) fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .patterns import ClientPattern, PatternError

_MISSING = object()
OPERATORS = ("<", "<=", ">", ">=", "=", "!=", "regex", "in", "len", "+", "-", "abs", "diff", "changed")
MAX_CONDITIONS = 32
MAX_REGEX = 512


class ConditionError(ValueError):
    """A condition that cannot be built; the message says which and why."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        if isinstance(value, str):
            try:
                parsed = float(value)
            except ValueError:
                return None
            return parsed if math.isfinite(parsed) else None
        return None
    return float(value)


def _length(value: Any) -> int | None:
    return len(value) if isinstance(value, str | list | tuple | Mapping) else None


def _ordering(test: Callable[[float, float], bool]) -> Callable[[Any, Any, Any], bool]:
    def check(value: Any, operand: Any, previous: Any) -> bool:
        left, right = _number(value), _number(operand)
        if left is not None and right is not None:
            return test(left, right)
        if isinstance(value, str) and isinstance(operand, str):
            return test(value, operand)  # type: ignore[arg-type]
        return False

    return check


def _equal(value: Any, operand: Any, previous: Any) -> bool:
    left, right = _number(value), _number(operand)
    if left is not None and right is not None and not isinstance(value, str):
        return left == right
    return value == operand


def _in(value: Any, operand: Any, previous: Any) -> bool:
    if isinstance(operand, list):
        return any(_equal(value, item, None) for item in operand)
    if isinstance(value, list):
        return any(_equal(item, operand, None) for item in value)
    if isinstance(value, str) and isinstance(operand, str):
        return operand in value
    return False


def _length_check(test: Callable[[int, int], bool]) -> Callable[[Any, Any, Any], bool]:
    def check(value: Any, operand: Any, previous: Any) -> bool:
        length, bound = _length(value), _number(operand)
        return length is not None and bound is not None and test(length, int(bound))

    return check


def _delta_operands(operand: Any, previous: Any) -> tuple[float, float] | None:
    if isinstance(operand, list) and len(operand) == 2:
        delta, reference = _number(operand[0]), _number(operand[1])
    else:
        delta, reference = _number(operand), (None if previous is _MISSING else _number(previous))
    if delta is None:
        return None
    if reference is None:
        return None
    return abs(delta), reference


def _absolute(value: Any, operand: Any, previous: Any) -> bool:
    current, pair = _number(value), _delta_operands(operand, previous)
    if pair is None:
        return previous is _MISSING and current is not None  # the first value has nothing to differ from
    return current is not None and abs(current - pair[1]) >= pair[0]


def _percent(value: Any, operand: Any, previous: Any) -> bool:
    current, pair = _number(value), _delta_operands(operand, previous)
    if pair is None:
        return previous is _MISSING and current is not None
    if current is None:
        return False
    delta, reference = pair
    if reference == 0:
        return current != 0
    return abs(current - reference) / abs(reference) * 100 >= delta


def _changed(value: Any, operand: Any, previous: Any) -> bool:
    return previous is _MISSING or value != previous


_CHECKS: dict[str, Callable[[Any, Any, Any], bool]] = {
    "<": _ordering(lambda a, b: a < b),
    "<=": _ordering(lambda a, b: a <= b),
    ">": _ordering(lambda a, b: a > b),
    ">=": _ordering(lambda a, b: a >= b),
    "=": _equal,
    "!=": lambda value, operand, previous: not _equal(value, operand, previous),
    "in": _in,
    "len": _length_check(lambda length, bound: length == bound),
    "+": _length_check(lambda length, bound: length >= bound),
    "-": _length_check(lambda length, bound: length <= bound),
    "abs": _absolute,
    "diff": _percent,
    "changed": _changed,
}


@dataclass(frozen=True, slots=True)
class Condition:
    operator: str
    operand: Any
    complement: bool
    pattern: ClientPattern | None = None

    def holds(self, value: Any, previous: Any = _MISSING) -> bool:
        if self.pattern is not None:
            result = isinstance(value, str) and self.pattern.fullmatch(value)
        else:
            result = _CHECKS[self.operator](value, self.operand, previous)
        return result != self.complement


def build(raw: Any, index: int = 0) -> Condition:
    if not isinstance(raw, Mapping):
        raise ConditionError(f"condition {index}: expected an object {{operator, operand, complement}}")
    operator = raw.get("operator")
    if operator not in OPERATORS:
        raise ConditionError(f"condition {index}: operator must be one of {' '.join(OPERATORS)}")
    complement = raw.get("complement", False)
    if not isinstance(complement, bool):
        raise ConditionError(f"condition {index}: 'complement' must be a boolean")
    operand = raw.get("operand")
    if operator != "changed" and operand is None:
        raise ConditionError(f"condition {index}: '{operator}' needs an operand")
    pattern = None
    if operator == "regex":
        if not isinstance(operand, str) or len(operand) > MAX_REGEX:
            raise ConditionError(
                f"condition {index}: 'regex' needs a pattern of at most {MAX_REGEX} characters"
            )
        try:
            pattern = ClientPattern(operand)
        except PatternError as error:
            raise ConditionError(f"condition {index}: {error}") from None
    if operator in {"len", "+", "-"} and _number(operand) is None:
        raise ConditionError(f"condition {index}: '{operator}' needs a numeric operand")
    if operator in {"abs", "diff"} and _delta_operands(operand, 0.0) is None:
        raise ConditionError(f"condition {index}: '{operator}' needs a delta or [delta, reference]")
    return Condition(operator, operand, complement, pattern)


def build_all(raw: Sequence[Any]) -> tuple[Condition, ...]:
    if len(raw) > MAX_CONDITIONS:
        raise ConditionError(f"at most {MAX_CONDITIONS} conditions")
    return tuple(build(item, index) for index, item in enumerate(raw))


def all_hold(conditions: Sequence[Condition], value: Any, previous: Any = _MISSING) -> bool:
    return all(condition.holds(value, previous) for condition in conditions)


NO_PREVIOUS = _MISSING
