"""A component: something the runtime starts, watches and stops (a driver, a server, the recorder)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    STARTING = "starting"
    OK = "ok"
    DEGRADED = "degraded"  # working, with a problem worth seeing (e.g. insecure keystore, port unplugged)
    FAILED = "failed"  # raised; waiting to be restarted
    STOPPED = "stopped"

    @property
    def ready(self) -> bool:
        return self in (State.OK, State.DEGRADED)


@dataclass(frozen=True, slots=True)
class Health:
    state: State
    detail: str = ""
    since: float = 0.0

    @classmethod
    def now(cls, state: State, detail: str = "") -> Health:
        return cls(state, detail[:300], time.time())


class Component:
    """Subclass and override run(); start() and stop() are optional hooks.

    run() is the component's life: it returns when stop() asked it to (or the task is cancelled). If it
    raises, the supervisor stops it, waits (exponential backoff) and starts it again; other components go on.
    A component reports how it is doing through set_health(); the supervisor records failures itself.
    """

    name: str = "component"
    critical: bool = True  # a failed critical component makes the agent not ready and starves the watchdog

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name
        self._health = Health.now(State.STARTING)
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        """Acquire resources; called before every run(), including after a restart."""

    async def run(self) -> None:
        """The component's work; by default it waits until stopped."""
        await self._stopping.wait()

    async def stop(self) -> None:
        """Ask run() to return and release resources. Must be safe to call more than once."""
        self._stopping.set()

    def reset(self) -> None:
        """Called by the supervisor before a (re)start."""
        self._stopping = asyncio.Event()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def wait_stopping(self, timeout: float) -> bool:
        """Sleeps up to `timeout`, waking early when asked to stop; True if stopping."""
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def set_health(self, state: State, detail: str = "") -> None:
        if state != self._health.state or detail != self._health.detail:
            self._health = Health.now(state, detail)

    def health(self) -> Health:
        return self._health
