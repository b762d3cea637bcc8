"""The agent's main loop: start the components, tell systemd, feed its watchdog, stop on SIGTERM.

The watchdog is fed only while the loop turns (a hung loop starves it) and no critical component has been
failing for longer than the grace period; then systemd restarts the whole agent, which is the right answer
to a fault the supervisor's own restarts could not mend.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Iterable

from .component import Component
from .sdnotify import Notifier
from .supervisor import Backoff, Supervisor

log = logging.getLogger("agent.runtime")


class Runtime:
    def __init__(
        self,
        components: Iterable[Component],
        *,
        backoff: Backoff | None = None,
        stop_timeout: float = 10.0,
        watchdog_grace: float = 30.0,
        stable_after: float = 10.0,
        notifier: Notifier | None = None,
    ) -> None:
        self.supervisor = Supervisor(components, backoff, stable_after=stable_after)
        self.stop_timeout = stop_timeout
        self.watchdog_grace = watchdog_grace
        self.notifier = notifier or Notifier()
        self.started_at: float | None = None
        self.heartbeat = 0.0  # monotonic time the loop last turned
        self._stop = asyncio.Event()
        self._on_stopped: list[Callable[[], Awaitable[None] | None]] = []

    def on_stopped(self, callback: Callable[[], Awaitable[None] | None]) -> None:
        """Runs after every component stopped (closing the outbox, for instance)."""
        self._on_stopped.append(callback)

    def request_stop(self) -> None:
        self._stop.set()

    @property
    def live(self) -> bool:
        return self.started_at is not None and time.monotonic() - self.heartbeat < 5.0

    def watchdog_ok(self) -> bool:
        failing = self.supervisor.failing_since()
        return failing is None or time.time() - failing < self.watchdog_grace

    def health_report(self) -> dict[str, object]:
        """Liveness and per-component readiness, as /healthz shows them."""
        components = {}
        for name, record in self.supervisor.records.items():
            health = self.supervisor.health_of(name)
            components[name] = {
                "state": str(health.state),
                "detail": health.detail,
                "since": round(health.since, 3),
                "critical": record.component.critical,
                "restarts": record.restarts,
                "last_error": record.last_error,
            }
        ready = self.supervisor.ready()
        states = {c["state"] for c in components.values()}
        status = "ok" if ready and states <= {"ok"} else ("degraded" if ready else "unavailable")
        return {
            "status": status,
            "live": self.live,
            "ready": ready,
            "started": self.started_at,
            "components": components,
        }

    async def run(self, install_signals: bool = True) -> None:
        loop = asyncio.get_running_loop()
        if install_signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self.request_stop)
        self.started_at = time.time()
        self.heartbeat = time.monotonic()
        await self.supervisor.start()
        beat = asyncio.create_task(self._beat(), name="runtime:heartbeat")
        try:
            await self._wait_ready()
            await self._stop.wait()
        finally:
            log.info("stopping")
            self.notifier.stopping()
            beat.cancel()
            await self.supervisor.stop(self.stop_timeout)
            for callback in self._on_stopped:
                result = callback()
                if result is not None:
                    await result
            if install_signals:
                for signum in (signal.SIGTERM, signal.SIGINT):
                    loop.remove_signal_handler(signum)
            log.info("stopped")

    async def _wait_ready(self) -> None:
        """READY=1 once every critical component started (or after 30 s, so systemd is not left hanging
        while a component without hardware keeps retrying: health tells the rest)."""
        deadline = time.monotonic() + 30
        while not self._stop.is_set() and not self.supervisor.ready() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if not self._stop.is_set():
            self.notifier.ready("running" if self.supervisor.ready() else "running, degraded")
            log.info("ready", extra={"ready": self.supervisor.ready()})

    async def _beat(self) -> None:
        interval = self.notifier.watchdog_interval
        last_ping = 0.0
        while True:
            self.heartbeat = time.monotonic()
            if interval and self.heartbeat - last_ping >= interval and self.watchdog_ok():
                self.notifier.watchdog()
                last_ping = self.heartbeat
            await asyncio.sleep(min(1.0, interval or 1.0))
