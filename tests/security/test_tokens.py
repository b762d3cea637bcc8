"""Legacy session tokens: issue, look up, expire, bound."""

from __future__ import annotations

from agent.security.access import Principal
from agent.security.tokens import SessionTokens
from tests.security.conftest import FakeClock

ALICE = Principal("alice", frozenset({"operator"}), via="basic")


def test_issue_and_look_up_until_expiry(clock: FakeClock) -> None:
    sessions = SessionTokens(ttl=600, max_sessions=10, clock=clock)
    issued = sessions.issue(ALICE)
    assert issued.generated == clock.now and issued.valid_until == clock.now + 600
    assert len(issued.token) >= 43 and issued.token not in repr(issued)
    found = sessions.lookup(issued.token)
    assert found is not None and found.name == "alice" and found.roles == ALICE.roles and found.via == "token"
    clock.advance(599)
    assert sessions.lookup(issued.token) is not None
    clock.advance(1)
    assert sessions.lookup(issued.token) is None
    assert len(sessions) == 0


def test_a_session_never_outlives_its_credential(clock: FakeClock) -> None:
    sessions = SessionTokens(ttl=600, max_sessions=10, clock=clock)
    issued = sessions.issue(ALICE, not_after=clock.now + 60)
    assert issued.valid_until == clock.now + 60
    clock.advance(60)
    assert sessions.lookup(issued.token) is None


def test_unknown_malformed_and_revoked_tokens(clock: FakeClock) -> None:
    sessions = SessionTokens(ttl=600, max_sessions=10, clock=clock)
    issued = sessions.issue(ALICE)
    assert sessions.lookup("") is None
    assert sessions.lookup("x" * 10_000) is None
    assert sessions.lookup(issued.token + "x") is None
    assert sessions.revoke(issued.token)
    assert sessions.lookup(issued.token) is None


def test_the_table_is_bounded_dropping_the_sessions_that_end_first(clock: FakeClock) -> None:
    sessions = SessionTokens(ttl=600, max_sessions=3, clock=clock)
    tokens = []
    for _ in range(5):
        tokens.append(sessions.issue(ALICE).token)
        clock.advance(1)
    assert len(sessions) == 3
    assert [sessions.lookup(token) is not None for token in tokens] == [False, False, True, True, True]
