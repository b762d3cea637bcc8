"""Runs components on one asyncio loop, restarts the ones that fail, and stops them all in time.

Each component runs in its own task. A component that raises is stopped, then started again after an
exponential backoff (with jitter, so a fleet does not retry in lockstep); the others never notice. A
component that stayed up for `restart_max` seconds is considered recovered and its backoff starts over.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from .component import Component, Health, State

log = logging.getLogger("agent.runtime.supervisor")


@dataclass
class ComponentRecord:
    component: Component
    restarts: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None
    failed_at: float | None = None  # when the current run of failures began (None once recovered)
    running_since: float | None = None  # monotonic time of the last successful start
    task: asyncio.Task[None] | None = field(default=None, repr=False)
    failed_health: Health | None = None


@dataclass(frozen=True)
class Backoff:
    initial: float = 0.5
    maximum: float = 60.0
    jitter: float = 0.1

    def delay(self, failures: int) -> float:
        base = min(self.maximum, self.initial * 2 ** max(0, failures - 1))
        return base * (1 + random.uniform(-self.jitter, self.jitter))


def describe_error(error: BaseException) -> str:
    """A one-line description for health and logs; exception texts of our own code carry no secrets."""
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text[:200]}" if text else type(error).__name__


class Supervisor:
    """`stable_after`: seconds a restarted component must stay up to count as recovered, which resets its
    backoff and ends its failure (a component crashing every few seconds is failing, not recovering)."""

    def __init__(
        self, components: Iterable[Component], backoff: Backoff | None = None, stable_after: float = 10.0
    ) -> None:
        components = list(components)
        self._records = {c.name: ComponentRecord(c) for c in components}
        if len(self._records) != len(components):
            raise ValueError("component names must be unique")
        self.backoff = backoff or Backoff()
        self.stable_after = stable_after
        self._running = False

    @property
    def records(self) -> dict[str, ComponentRecord]:
        return self._records

    def add(self, component: Component) -> None:
        if component.name in self._records:
            raise ValueError(f"a component named {component.name!r} already exists")
        record = ComponentRecord(component)
        self._records[component.name] = record
        if self._running:
            record.task = asyncio.create_task(self._supervise(record), name=f"component:{component.name}")

    async def start(self) -> None:
        self._running = True
        for record in self._records.values():
            record.task = asyncio.create_task(
                self._supervise(record), name=f"component:{record.component.name}"
            )

    def health_of(self, name: str) -> Health:
        record = self._records[name]
        if record.failed_health is not None:
            return record.failed_health
        return record.component.health()

    def ready(self) -> bool:
        return all(
            self.health_of(name).state.ready for name, r in self._records.items() if r.component.critical
        )

    def failing_since(self) -> float | None:
        """When the oldest ongoing failure of a critical component began."""
        now = time.monotonic()
        for record in self._records.values():
            if record.running_since is not None and now - record.running_since >= self.stable_after:
                record.failed_at = None
        times = [r.failed_at for r in self._records.values() if r.component.critical and r.failed_at]
        return min(times) if times else None

    async def _supervise(self, record: ComponentRecord) -> None:
        component = record.component
        while self._running:
            component.reset()
            started = time.monotonic()
            try:
                await component.start()
                if component.health().state is State.STARTING:
                    component.set_health(State.OK)
                record.failed_health = None
                record.running_since = time.monotonic()
                await component.run()
                if not self._running or component.stopping:
                    break
                raise RuntimeError("run() returned without being asked to stop")
            except asyncio.CancelledError:
                raise
            except Exception as error:
                if not self._running:
                    break
                await self._fail(record, error, time.monotonic() - started)
        component.set_health(State.STOPPED)

    async def _fail(self, record: ComponentRecord, error: Exception, uptime: float) -> None:
        component = record.component
        record.running_since = None
        if uptime >= self.stable_after:
            record.consecutive_failures = 0  # it had recovered: start the backoff over
            record.failed_at = None
        record.consecutive_failures += 1
        record.restarts += 1
        record.last_error = describe_error(error)
        record.failed_at = record.failed_at or time.time()
        delay = self.backoff.delay(record.consecutive_failures)
        record.failed_health = Health.now(State.FAILED, f"{record.last_error}; restart in {delay:.1f}s")
        log.error(
            "component %s failed (%s); restart %d in %.1fs",
            component.name,
            record.last_error,
            record.restarts,
            delay,
            exc_info=error,
        )
        try:
            await asyncio.wait_for(component.stop(), timeout=5)
        except Exception as stop_error:  # a failed cleanup must not stop the restart
            log.warning("component %s did not stop cleanly: %s", component.name, describe_error(stop_error))
        await asyncio.sleep(delay)

    async def stop(self, timeout: float = 10.0) -> None:
        """Stops every component, last started first, within `timeout` seconds overall."""
        self._running = False
        deadline = time.monotonic() + timeout
        for record in reversed(list(self._records.values())):
            component = record.component
            left = max(0.1, deadline - time.monotonic())
            try:
                await asyncio.wait_for(component.stop(), timeout=left)
            except Exception as error:
                log.warning("component %s did not stop cleanly: %s", component.name, describe_error(error))
            if record.task is not None and record.failed_health is not None:
                record.task.cancel()  # waiting out a backoff: nothing to finish
            if record.task is not None:
                done, _ = await asyncio.wait({record.task}, timeout=max(0.1, deadline - time.monotonic()))
                if not done:
                    log.warning("component %s ignored stop; cancelling it", component.name)
                    record.task.cancel()
                    await asyncio.wait({record.task}, timeout=1)
            component.set_health(State.STOPPED)
            record.failed_health = None
