"""The demo as a newcomer runs it: `msec-agent run --demo` as a real process, with the local Prosody and
Mosquitto it starts (both installed on the test machine), and `msec-agent watch` as a real process."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.demo.services import find_binary, services_file
from tests.conftest import wait_until

AGENT = [sys.executable, "-m", "agent"]
DEVICE = "demo-truck-001"  # agent/profiles/demo.toml

needs_servers = pytest.mark.skipif(
    not (find_binary("prosody") and find_binary("prosodyctl") and find_binary("mosquitto")),
    reason="prosody and mosquitto are not installed",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def health(port: int) -> dict:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:  # 503 while not ready: still a report
        return json.load(error)
    except OSError:
        return {}


def readings(port: int) -> float:
    """msec_readings_total from /metrics (0 while unreachable)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            for line in response.read().decode().splitlines():
                if line.startswith("msec_readings_total "):
                    return float(line.split()[1])
    except OSError:
        pass
    return 0.0


@dataclass
class DemoAgent:
    process: subprocess.Popen[bytes]
    state_dir: Path
    port: int
    log: Path

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def components(self) -> dict:
        return health(self.port).get("components", {})

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise


def start_demo(tmp_path: Path, *extra: str) -> DemoAgent:
    state, port, log = tmp_path / "state", free_port(), tmp_path / "agent.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [*AGENT, "run", "--demo", "--state-dir", str(state), "--listen", f"127.0.0.1:{port}", *extra],
            stdout=subprocess.DEVNULL,
            stderr=output,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
    agent = DemoAgent(process, state, port, log)
    try:
        wait_until(lambda: health(port).get("ready") or process.poll() is not None, timeout=30)
    except AssertionError:
        agent.stop()
        raise
    assert process.poll() is None, agent.text()
    return agent


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoAgent]:
    """One demo agent with its services for a module's tests: publishing to both, read by watchers."""
    agent = start_demo(tmp_path_factory.mktemp("demo"))
    try:
        wait_until(
            lambda: all(agent.components().get(c, {}).get("state") == "ok" for c in ("soxfire", "mqtt")),
            timeout=30,
        )
        yield agent
    finally:
        agent.stop()
    assert "Traceback" not in agent.text(), agent.text()


def watch(state_dir: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`msec-agent watch --demo`, bounded twice: its own --timeout, and the test's."""
    return subprocess.run(
        [*AGENT, "watch", *args, "--demo", "--state-dir", str(state_dir), "--timeout", str(timeout)],
        capture_output=True,
        text=True,
        timeout=timeout + 30,
        check=False,
    )


def services_json(state_dir: Path) -> dict:
    return json.loads(services_file(state_dir).read_text())
