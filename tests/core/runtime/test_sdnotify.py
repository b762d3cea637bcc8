"""sd_notify against a real AF_UNIX datagram socket, as systemd provides it."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from agent.core.runtime import Notifier


@pytest.fixture
def notify_socket(tmp_path: Path):
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield str(path), sock
    sock.close()


def test_ready_watchdog_and_stopping_reach_the_socket(notify_socket) -> None:
    path, sock = notify_socket
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready("running")
    assert sock.recv(4096) == b"READY=1\nSTATUS=running"
    assert notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1"


def test_abstract_socket_address() -> None:
    name = f"msec-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        assert Notifier({"NOTIFY_SOCKET": "@" + name}).ready()
        assert sock.recv(100) == b"READY=1"
    finally:
        sock.close()


def test_without_systemd_nothing_is_sent_and_nothing_fails() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.watchdog_interval is None


def test_a_vanished_socket_is_reported_not_raised(tmp_path: Path) -> None:
    assert Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")}).ready() is False


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process() -> None:
    env = {"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "20000000"}
    assert Notifier(env).watchdog_interval == 10.0
    assert Notifier({**env, "WATCHDOG_PID": str(os.getpid())}).watchdog_interval == 10.0
    assert Notifier({**env, "WATCHDOG_PID": "1"}).watchdog_interval is None  # meant for another process
    assert Notifier({**env, "WATCHDOG_USEC": "garbage"}).watchdog_interval is None
    assert Notifier({**env, "WATCHDOG_USEC": "0"}).watchdog_interval is None
