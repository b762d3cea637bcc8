"""The rule matrix: operations x roles x globs, first match, default deny, anonymous on and off."""

from __future__ import annotations

import pytest

from agent.security.access import ANONYMOUS, Operation, Principal
from agent.security.rules import Effect, Rule, RuleSet

D, R, U, A = Operation.DESCRIBE, Operation.READ, Operation.UPDATE, Operation.ACT
ALL = frozenset(Operation)

RULES = [
    # operators may not touch the camera at all, whatever comes later
    Rule(ALL, roles=frozenset({"operator"}), provider="truck-*", service="camera", effect=Effect.DENY),
    Rule(ALL, roles=frozenset({"operator"}), provider="truck-*"),
    Rule(frozenset({D, R}), roles=frozenset({"reader"}), provider="truck-*", service="gps"),
    Rule(frozenset({U}), users=frozenset({"tech"}), provider="truck-1", service="lights", resource="level"),
    Rule(frozenset({A}), users=frozenset({"tech"}), provider="truck-1", service="lights", resource="turn_*"),
    Rule(frozenset({D}), roles=frozenset({"authenticated"}), provider="sensiNact"),
    Rule(
        frozenset({D, R}), roles=frozenset({"anonymous"}), provider="public-*", service="air", resource="pm*"
    ),
]

OPERATOR = Principal("olga", frozenset({"operator"}), via="bearer")
READER = Principal("rita", frozenset({"reader"}), via="bearer")
TECH = Principal("tech", via="basic")
NOBODY = Principal("nemo", via="basic")


@pytest.mark.parametrize(
    ("principal", "operation", "path", "expected"),
    [
        (OPERATOR, A, ("truck-1", "lights", "turn_on"), True),
        (OPERATOR, U, ("truck-2", "gps", "speed"), True),
        (OPERATOR, D, ("truck-2",), True),
        (OPERATOR, R, ("truck-1", "camera", "frame"), False),  # the deny comes first
        (OPERATOR, D, ("truck-1", "camera"), False),
        (OPERATOR, R, ("bus-1", "gps", "speed"), False),  # no rule: default deny
        (READER, R, ("truck-1", "gps", "speed"), True),
        (READER, D, ("truck-1", "gps"), True),
        (READER, D, ("truck-1",), True),  # may see the provider that holds what it may read
        (READER, R, ("truck-1",), False),  # but not read all of it
        (READER, R, ("truck-1", "lights", "level"), False),
        (READER, U, ("truck-1", "gps", "speed"), False),
        (READER, A, ("truck-1", "gps", "reset"), False),
        (TECH, U, ("truck-1", "lights", "level"), True),
        (TECH, U, ("truck-1", "lights", "turn_on"), False),
        (TECH, A, ("truck-1", "lights", "turn_on"), True),
        (TECH, A, ("truck-2", "lights", "turn_on"), False),
        (TECH, R, ("truck-1", "lights", "level"), False),
        (TECH, D, ("sensiNact", "system", "version"), True),  # the implicit 'authenticated' role
        (NOBODY, D, ("sensiNact",), True),
        (NOBODY, R, ("sensiNact", "system", "version"), False),
        (NOBODY, D, ("Truck-1",), False),
    ],
)
def test_matrix(principal: Principal, operation: Operation, path: tuple[str, ...], expected: bool) -> None:
    assert RuleSet(RULES).allowed(principal, operation, *path) is expected


def test_globs_are_case_sensitive_and_anchored() -> None:
    rules = RuleSet([Rule(ALL, roles=frozenset({"r"}), provider="truck-?")])
    who = Principal("x", frozenset({"r"}))
    assert rules.allowed(who, R, "truck-1", "s", "r")
    assert not rules.allowed(who, R, "truck-10", "s", "r")
    assert not rules.allowed(who, R, "TRUCK-1", "s", "r")


def test_a_partial_deny_does_not_hide_the_whole_provider() -> None:
    rules = RuleSet(
        [
            Rule(ALL, roles=frozenset({"r"}), provider="p", service="secret", effect=Effect.DENY),
            Rule(frozenset({D}), roles=frozenset({"r"}), provider="p"),
        ]
    )
    who = Principal("x", frozenset({"r"}))
    assert rules.allowed(who, D, "p")
    assert not rules.allowed(who, D, "p", "secret")
    assert rules.allowed(who, D, "p", "open")


def test_anonymous_gets_only_anonymous_rules_and_only_when_switched_on() -> None:
    on, off = RuleSet(RULES, allow_anonymous=True), RuleSet(RULES, allow_anonymous=False)
    assert on.allowed(ANONYMOUS, R, "public-3", "air", "pm10")
    assert not off.allowed(ANONYMOUS, R, "public-3", "air", "pm10")
    assert not on.allowed(ANONYMOUS, U, "public-3", "air", "pm10")
    assert not on.allowed(ANONYMOUS, D, "sensiNact")  # 'authenticated' rules are not for anonymous
    # Authenticated users do not inherit anonymous grants: each rule names whom it is for.
    assert not on.allowed(NOBODY, R, "public-3", "air", "pm10")
    # Nobody becomes a user by name while anonymous, nor holds roles it claims.
    sneaky = Principal("tech", frozenset({"operator"}), anonymous=True)
    assert not on.allowed(sneaky, U, "truck-1", "lights", "level")
    assert not on.allowed(sneaky, R, "truck-1", "gps", "speed")


def test_no_rules_deny_everything() -> None:
    assert not RuleSet([]).allowed(OPERATOR, D, "truck-1")
