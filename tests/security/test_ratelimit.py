"""Failed-login limiting per source, on a hand-moved clock."""

from __future__ import annotations

from agent.security.ratelimit import FailureLimiter
from tests.security.conftest import FakeClock


def limiter(clock: FakeClock, **options: float) -> FailureLimiter:
    settings = {"max_failures": 3, "window": 60.0, "lockout": 120.0, **options}
    return FailureLimiter(clock=clock, **settings)  # type: ignore[arg-type]


def test_a_source_is_locked_out_after_max_failures_in_the_window(clock: FakeClock) -> None:
    limit = limiter(clock)
    for _ in range(2):
        limit.failed("10.0.0.1")
    assert limit.retry_after("10.0.0.1") == 0
    limit.failed("10.0.0.1")
    assert limit.retry_after("10.0.0.1") == 120
    assert limit.retry_after("10.0.0.2") == 0  # others are not affected
    clock.advance(119)
    assert limit.retry_after("10.0.0.1") == 1
    clock.advance(1)
    assert limit.retry_after("10.0.0.1") == 0


def test_failures_outside_the_window_do_not_add_up(clock: FakeClock) -> None:
    limit = limiter(clock)
    for _ in range(5):
        limit.failed("a")
        limit.failed("a")
        clock.advance(61)
        assert limit.retry_after("a") == 0


def test_success_clears_and_memory_is_bounded(clock: FakeClock) -> None:
    limit = limiter(clock, max_sources=2)
    limit.failed("a")
    limit.failed("a")
    limit.succeeded("a")
    limit.failed("a")
    assert limit.retry_after("a") == 0
    for source in ("a", "a", "b", "c"):
        limit.failed(source)
    assert limit.retry_after("a") == 0  # "a" was forgotten, being the least recently seen of three
