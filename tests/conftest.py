"""Shared fixtures: a real agent assembled from a config file, run on its own event loop thread."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.app import Agent, build_agent, extensions
from agent.core.config import load_config


def write_config(directory: Path, body: str = "", *, http: bool = False, listen: str = "127.0.0.1:0") -> Path:
    """A config with its state in `directory`; `body` adds tables; `listen` fixes the HTTP port when a test
    must know it before the start (a URL in the config pointing back at the agent)."""
    path = directory / "agent.toml"
    path.write_text(
        f'[agent]\ndevice_id = "test-truck"\nprofile = "development"\nstate_dir = "{directory}/state"\n'
        f'log_format = "text"\n\n[outbox]\nsynchronous = "NORMAL"\n\n[http]\nenabled = {str(http).lower()}\n'
        f'listen = "{listen}"\n\n{body}'
    )
    return path


class AgentThread:
    """Runs an agent's runtime on a private event loop in a thread, as the CLI would on the main one."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._main, name="agent-loop", daemon=True)
        self.error: BaseException | None = None

    def _main(self) -> None:
        try:
            self.loop.run_until_complete(self.agent.run(install_signals=False))
        except BaseException as error:  # surfaced by stop()
            self.error = error

    @property
    def url(self) -> str:
        """The base URL of the agent's own HTTP server (config http.enabled with port 0)."""
        handle = self.agent.runtime.supervisor.records["http"].component.handle  # type: ignore[attr-defined]
        return handle.url

    def start(self) -> AgentThread:
        self.thread.start()
        supervisor = self.agent.runtime.supervisor
        wait_until(
            lambda: (
                self.agent.runtime.started_at is not None
                and all(supervisor.health_of(name).state.ready for name in supervisor.records)
            )
        )
        return self

    def stop(self, timeout: float = 15) -> None:
        self.loop.call_soon_threadsafe(self.agent.runtime.request_stop)
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the agent did not stop in time"
        if self.error:
            raise self.error


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(interval)


@pytest.fixture
def run_agent(tmp_path: Path) -> Iterator[Callable[..., AgentThread]]:
    started: list[AgentThread] = []

    def start(body: str = "", http: bool = False, listen: str = "127.0.0.1:0") -> AgentThread:
        config = load_config(write_config(tmp_path, body, http=http, listen=listen), extensions())
        runner = AgentThread(build_agent(config)).start()
        started.append(runner)
        return runner

    yield start
    for runner in started:
        if runner.thread.is_alive():
            runner.stop()
