"""Legacy subscription conditions, operator by operator."""

from __future__ import annotations

import pytest

from agent.northbound.sensinact.conditions import NO_PREVIOUS, ConditionError, all_hold, build, build_all


def holds(operator: str, operand, value, previous=NO_PREVIOUS, complement: bool = False) -> bool:
    return build({"operator": operator, "operand": operand, "complement": complement}).holds(value, previous)


def test_the_legacy_example() -> None:
    conditions = build_all([{"operator": "<", "operand": 200, "type": "int", "complement": False}])
    assert [v for v in (2, 200, 199, 201, 185) if all_hold(conditions, v)] == [2, 199, 185]


@pytest.mark.parametrize(
    ("operator", "operand", "value", "expected"),
    [
        ("<", 5, 4, True),
        ("<", 5, 5, False),
        ("<=", 5, 5, True),
        (">", 5, 6, True),
        (">=", 5, 4, False),
        ("=", 5, 5.0, True),
        ("=", "ON", "ON", True),
        ("!=", "ON", "OFF", True),
        ("<", "b", "a", True),
        ("<", 5, "text", False),
        ("regex", "O[NF]+", "OFF", True),
        ("regex", "O", "OFF", False),
        ("in", ["ON", "OFF"], "ON", True),
        ("in", ["ON"], "DIM", False),
        ("in", "x", ["x", "y"], True),
        ("len", 3, "abc", True),
        ("+", 3, "ab", False),
        ("-", 3, [1, 2], True),
        ("abs", [2, 10], 12, True),
        ("abs", [2, 10], 11, False),
        ("diff", [10, 100], 111, True),
        ("diff", [10, 100], 105, False),
    ],
)
def test_operators(operator, operand, value, expected) -> None:
    assert holds(operator, operand, value) is expected
    assert holds(operator, operand, value, complement=True) is (not expected)


def test_change_tracking_against_the_previous_value() -> None:
    assert holds("changed", None, 1) is True  # the first value
    assert holds("changed", None, 1, previous=1) is False
    assert holds("changed", None, 2, previous=1) is True
    assert holds("abs", 5, 10, previous=4) is True
    assert holds("abs", 5, 8, previous=4) is False
    assert holds("diff", 50, 16, previous=10) is True
    assert holds("abs", 5, 10) is True  # nothing to compare with yet: notify


@pytest.mark.parametrize(
    "raw",
    [
        "<",
        {"operator": "nope", "operand": 1},
        {"operator": "<"},
        {"operator": "regex", "operand": "("},
        {"operator": "len", "operand": "x"},
        {"operator": "abs", "operand": "x"},
        {"operator": "<", "operand": 1, "complement": "yes"},
    ],
)
def test_bad_conditions(raw) -> None:
    with pytest.raises(ConditionError):
        build(raw)
