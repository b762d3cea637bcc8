"""The supervisor restarts what fails, with backoff, without touching the others."""

from __future__ import annotations

import asyncio

import pytest

from agent.core.runtime import Backoff, Component, State, Supervisor

FAST = Backoff(initial=0.01, maximum=0.05, jitter=0.0)


class Flaky(Component):
    """Fails `failures` times in run(), then runs until stopped."""

    def __init__(self, name: str, failures: int) -> None:
        super().__init__(name)
        self.failures = failures
        self.starts = 0
        self.stops = 0

    async def start(self) -> None:
        self.starts += 1

    async def run(self) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ValueError(f"sensor unplugged ({self.failures} to go)")
        await super().run()

    async def stop(self) -> None:
        self.stops += 1
        await super().stop()


class Ticker(Component):
    def __init__(self) -> None:
        super().__init__("ticker")
        self.ticks = 0

    async def run(self) -> None:
        while not await self.wait_stopping(0.005):
            self.ticks += 1


async def wait_for(predicate, timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not predicate():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(poll(), timeout)


def test_backoff_grows_exponentially_up_to_the_maximum() -> None:
    backoff = Backoff(initial=0.5, maximum=8, jitter=0)
    assert [backoff.delay(n) for n in range(1, 7)] == [0.5, 1, 2, 4, 8, 8]


def test_backoff_jitter_stays_within_bounds() -> None:
    backoff = Backoff(initial=1, maximum=1, jitter=0.1)
    delays = {backoff.delay(3) for _ in range(200)}
    assert all(0.9 <= d <= 1.1 for d in delays) and len(delays) > 1


async def test_a_failing_component_is_restarted_and_others_keep_running() -> None:
    flaky, ticker = Flaky("flaky", failures=3), Ticker()
    supervisor = Supervisor([flaky, ticker], FAST)
    await supervisor.start()
    await wait_for(lambda: flaky.starts == 4 and supervisor.health_of("flaky").state is State.OK)
    ticks_before = ticker.ticks
    await wait_for(lambda: ticker.ticks > ticks_before + 3)
    record = supervisor.records["flaky"]
    assert record.restarts == 3
    assert record.last_error == "ValueError: sensor unplugged (0 to go)"
    assert supervisor.records["ticker"].restarts == 0
    assert supervisor.ready()
    await supervisor.stop(2)
    assert supervisor.health_of("flaky").state is State.STOPPED
    assert flaky.stops >= 4  # stopped after each failure, and at the end


async def test_failed_component_reports_failure_and_readiness_follows_criticality() -> None:
    broken = Flaky("broken", failures=10**6)
    optional = Flaky("optional", failures=10**6)
    optional.critical = False
    supervisor = Supervisor([broken, optional], Backoff(initial=10, maximum=10, jitter=0))
    await supervisor.start()
    await wait_for(lambda: supervisor.records["broken"].restarts == 1)
    health = supervisor.health_of("broken")
    assert health.state is State.FAILED
    assert "sensor unplugged" in health.detail and "restart in 10.0s" in health.detail
    assert not supervisor.ready()
    assert supervisor.failing_since() is not None
    await supervisor.stop(1)  # components waiting out a backoff are cancelled at once


async def test_run_returning_on_its_own_counts_as_a_failure() -> None:
    class Quitter(Component):
        runs = 0

        async def run(self) -> None:
            Quitter.runs += 1

    supervisor = Supervisor([Quitter("quitter")], FAST)
    await supervisor.start()
    await wait_for(lambda: supervisor.records["quitter"].restarts >= 2)
    assert "returned without being asked to stop" in supervisor.records["quitter"].last_error
    await supervisor.stop(1)


async def test_stop_cancels_a_component_that_ignores_it() -> None:
    class Stubborn(Component):
        cancelled = False

        async def run(self) -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                Stubborn.cancelled = True
                raise

        async def stop(self) -> None:  # does not tell run() anything
            pass

    supervisor = Supervisor([Stubborn("stubborn")], FAST)
    await supervisor.start()
    await asyncio.sleep(0.05)
    await supervisor.stop(0.3)
    assert Stubborn.cancelled
    assert supervisor.health_of("stubborn").state is State.STOPPED


async def test_a_failing_start_is_retried_like_a_failing_run() -> None:
    class BadStart(Component):
        attempts = 0

        async def start(self) -> None:
            BadStart.attempts += 1
            if BadStart.attempts < 3:
                raise OSError("serial port /dev/ttyUSB0 missing")

    supervisor = Supervisor([BadStart("port")], FAST)
    await supervisor.start()
    await wait_for(lambda: supervisor.health_of("port").state is State.OK)
    assert supervisor.records["port"].restarts == 2
    await supervisor.stop(1)


async def test_components_added_while_running_are_started() -> None:
    supervisor = Supervisor([], FAST)
    await supervisor.start()
    ticker = Ticker()
    supervisor.add(ticker)
    await wait_for(lambda: ticker.ticks > 2)
    with pytest.raises(ValueError, match="already exists"):
        supervisor.add(Ticker())
    await supervisor.stop(1)


def test_component_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        Supervisor([Ticker(), Ticker()])
