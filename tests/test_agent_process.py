"""The agent as systemd runs it: a real process, sd_notify, HTTP, SIGTERM, and a consistent outbox after."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from agent.core.outbox import Outbox
from tests.conftest import wait_until

AGENT = [sys.executable, "-m", "agent"]
# The demo without its local Prosody/Mosquitto: these tests are about the process (tests/demo/ has those).
DEMO = ["run", "--demo", "--no-services"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def metric(url: str, name: str) -> float:
    with urllib.request.urlopen(url, timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(name)


@pytest.fixture
def notify(tmp_path: Path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(20)
    yield sock, str(path)
    sock.close()


def start(args: list[str], env_extra: dict[str, str], tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, **env_extra}
    return subprocess.Popen(
        [*AGENT, *args], env=env, stdout=subprocess.PIPE, stderr=open(tmp_path / "agent.log", "wb")
    )


def test_demo_profile_runs_notifies_systemd_and_stops_cleanly_on_sigterm(tmp_path: Path, notify) -> None:
    sock, path = notify
    port = free_port()
    state = tmp_path / "state"
    proc = start(
        [*DEMO, "--state-dir", str(state), "--listen", f"127.0.0.1:{port}"],
        {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"},
        tmp_path,
    )
    try:
        first = sock.recv(4096)
        while first == b"WATCHDOG=1":  # the loop is fed to systemd from the start, readiness comes after
            first = sock.recv(4096)
        assert first.startswith(b"READY=1"), first
        base = f"http://127.0.0.1:{port}"
        report = get_json(base + "/healthz")
        assert report["ready"] and set(report["components"]) == {
            "recorder",
            "driver:sim",
            "driver:gps",
            "driver:pms",
            "driver:gpio",
            "driver:ble",
            "http",
        }
        wait_until(lambda: metric(base + "/metrics", "msec_readings_total") >= 10, timeout=20)
        assert sock.recv(4096) == b"WATCHDOG=1"  # fed at half of WATCHDOG_USEC
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0  # the bound: everything stopped within 10 s
        stopped_in = time.monotonic() - began
    finally:
        if proc.poll() is None:
            proc.kill()
    log = (tmp_path / "agent.log").read_text()
    assert "Traceback" not in log, log
    assert stopped_in < 10

    # The outbox is consistent: intact, and every stream's sequence has no gap.
    db = sqlite3.connect(state / "outbox.db")
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    db.close()
    with Outbox(state / "outbox.db") as outbox:
        assert outbox.recovered_from is None
        outbox.register_sink("check")
        records = outbox.peek("check", limit=100_000)
    assert len(records) >= 10
    streams: dict[str, list[int]] = {}
    for record in records:
        streams.setdefault(record.stream, []).append(record.seq)
    assert "truck/environment/temperature" in streams and "truck/admin/location" not in streams
    for seqs in streams.values():
        assert seqs == list(range(1, len(seqs) + 1))


def test_restart_continues_the_same_outbox(tmp_path: Path) -> None:
    state = tmp_path / "state"
    for _ in range(2):
        port = free_port()
        proc = start([*DEMO, "--state-dir", str(state), "--listen", f"127.0.0.1:{port}"], {}, tmp_path)
        try:
            wait_until(lambda port=port: _ready(port), timeout=20)
            wait_until(
                lambda port=port: metric(f"http://127.0.0.1:{port}/metrics", "msec_readings_total") >= 25
            )
        finally:
            proc.send_signal(signal.SIGINT)  # Ctrl-C in `./build.sh run`
            assert proc.wait(timeout=10) == 0
    with Outbox(state / "outbox.db") as outbox:
        outbox.register_sink("check")
        records = outbox.peek("check", limit=100_000)
    temperature = [r.seq for r in records if r.stream == "truck/environment/temperature"]
    assert temperature == list(range(1, len(temperature) + 1)) and len(temperature) >= 4  # both runs
    assert len({r.uid for r in records}) == len(records)


def _ready(port: int) -> bool:
    try:
        return bool(get_json(f"http://127.0.0.1:{port}/healthz")["ready"])
    except OSError:
        return False


def test_a_corrupt_outbox_is_set_aside_and_the_agent_still_starts(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "outbox.db").write_bytes(b"this is not a database" * 100)
    port = free_port()
    proc = start([*DEMO, "--state-dir", str(state), "--listen", f"127.0.0.1:{port}"], {}, tmp_path)
    try:
        wait_until(lambda: _ready(port), timeout=20)
        assert metric(f"http://127.0.0.1:{port}/metrics", "msec_outbox_recovered") == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    aside = [p.name for p in state.iterdir() if ".corrupt-" in p.name]
    assert len(aside) == 1 and aside[0].startswith("outbox.db.corrupt-")
    assert "set aside" in (tmp_path / "agent.log").read_text()


def test_an_unwritable_state_dir_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    proc = subprocess.run(
        [*AGENT, "run", "--demo", "--state-dir", str(blocker / "sub")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 1
    assert "cannot start" in proc.stderr and "Traceback" not in proc.stderr
