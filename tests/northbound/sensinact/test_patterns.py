"""Clients' regular expressions run with a time budget: a catastrophic pattern cannot hold a thread."""

from __future__ import annotations

import pytest

from agent.northbound.sensinact.conditions import ConditionError, build_all
from agent.northbound.sensinact.patterns import MAX_PATTERN, ClientPattern, PatternError


def test_ordinary_patterns_match() -> None:
    pattern = ClientPattern(r"temp(erature)?_\d+")
    assert pattern.fullmatch("temperature_12") and not pattern.fullmatch("temperature_x")
    assert ClientPattern("ature").search("temperature") and not ClientPattern("ature").fullmatch(
        "temperature"
    )


def test_catastrophic_backtracking_counts_as_no_match(caplog) -> None:
    # With Python's re this runs for hours on a 60-character name; here it stops at the budget.
    pattern = ClientPattern(r"^(a|aa)+$")
    assert pattern.fullmatch("a" * 60 + "b") is False
    assert "ran out of time" in caplog.text


@pytest.mark.parametrize("bad", ["(", "[a-", "a{2,1}", "x" * (MAX_PATTERN + 1)])
def test_bad_or_oversize_patterns_are_refused(bad: str) -> None:
    with pytest.raises(PatternError):
        ClientPattern(bad)


def test_conditions_use_the_budget() -> None:
    [condition] = build_all([{"operator": "regex", "operand": "^(a|aa)+$"}])
    assert condition.holds("a" * 60 + "b") is False
    with pytest.raises(ConditionError, match="bad regex"):
        build_all([{"operator": "regex", "operand": "("}])


def test_a_hostile_path_pattern_answers_quickly(served) -> None:
    status, _, body = served.client.request("GET", "/sensinact/(PROVIDER=*)/*/(^(a|aa)+$)/GET")
    assert status in (200, 404)
    assert b"Traceback" not in (body if isinstance(body, bytes) else b"")
