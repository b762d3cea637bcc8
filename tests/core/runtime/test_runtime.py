"""The runtime tells systemd it is ready, feeds the watchdog only while healthy, and stops in time."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from agent.core.runtime import Backoff, Component, Notifier, Runtime


class Sleeper(Component):
    pass


class AlwaysFails(Component):
    async def run(self) -> None:
        raise RuntimeError("no TPM")


def receiver(tmp_path: Path) -> tuple[socket.socket, str]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = str(tmp_path / "notify")
    sock.bind(path)
    sock.setblocking(False)
    return sock, path


def messages(sock: socket.socket) -> list[bytes]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096))
        except BlockingIOError:
            return out


async def test_ready_then_watchdog_then_stopping(tmp_path: Path) -> None:
    sock, path = receiver(tmp_path)
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})  # ping every 0.1 s
    runtime = Runtime([Sleeper("a"), Sleeper("b")], notifier=notifier)
    closed = []
    runtime.on_stopped(lambda: closed.append(True))
    task = asyncio.create_task(runtime.run(install_signals=False))
    await asyncio.sleep(0.5)
    report = runtime.health_report()
    assert report["live"] and report["ready"] and report["status"] == "ok"
    assert set(report["components"]) == {"a", "b"}
    runtime.request_stop()
    await asyncio.wait_for(task, 5)
    sent = messages(sock)
    ready = [i for i, m in enumerate(sent) if m.startswith(b"READY=1")]
    assert len(ready) == 1
    assert sent[ready[0] + 1 :].count(b"WATCHDOG=1") >= 2  # fed while running
    assert sent[-1] == b"STOPPING=1"
    assert closed == [True]
    sock.close()


async def test_watchdog_starves_when_a_critical_component_keeps_failing(tmp_path: Path) -> None:
    sock, path = receiver(tmp_path)
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})
    runtime = Runtime(
        [AlwaysFails("tpm")], backoff=Backoff(0.01, 0.02, 0), notifier=notifier, watchdog_grace=0.2
    )
    task = asyncio.create_task(runtime.run(install_signals=False))
    try:
        await asyncio.sleep(0.6)
        messages(sock)  # whatever was sent during the grace period
        await asyncio.sleep(0.4)
        assert b"WATCHDOG=1" not in messages(sock)
        report = runtime.health_report()
        assert report["ready"] is False and report["status"] == "unavailable"
        assert report["components"]["tpm"]["restarts"] >= 3
        assert report["components"]["tpm"]["last_error"] == "RuntimeError: no TPM"
    finally:
        runtime.request_stop()
        await asyncio.wait_for(task, 5)
        sock.close()


async def test_watchdog_is_fed_again_once_the_component_recovers(tmp_path: Path) -> None:
    class FailsTwice(Component):
        failures = 0

        async def run(self) -> None:
            if FailsTwice.failures < 2:
                FailsTwice.failures += 1
                raise RuntimeError("TPM busy")
            await super().run()

    sock, path = receiver(tmp_path)
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "100000"})
    runtime = Runtime(
        [FailsTwice("tpm")],
        backoff=Backoff(0.01, 0.02, 0),
        notifier=notifier,
        watchdog_grace=0.1,
        stable_after=0.2,
    )
    task = asyncio.create_task(runtime.run(install_signals=False))
    try:
        await asyncio.sleep(0.6)
        messages(sock)
        await asyncio.sleep(0.3)
        assert b"WATCHDOG=1" in messages(sock)
        assert runtime.supervisor.failing_since() is None
    finally:
        runtime.request_stop()
        await asyncio.wait_for(task, 5)
        sock.close()


async def test_degraded_component_keeps_the_agent_ready() -> None:
    from agent.core.runtime import State

    class Unplugged(Component):
        async def start(self) -> None:
            self.set_health(State.DEGRADED, "port gone, retrying")

    runtime = Runtime([Unplugged("serial")], notifier=Notifier({}))
    task = asyncio.create_task(runtime.run(install_signals=False))
    await asyncio.sleep(0.2)
    report = runtime.health_report()
    assert report["ready"] is True and report["status"] == "degraded"
    assert report["components"]["serial"]["detail"] == "port gone, retrying"
    runtime.request_stop()
    await asyncio.wait_for(task, 5)
