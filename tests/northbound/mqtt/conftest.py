"""Fixtures: a real Mosquitto per test (broker.py), consumers, and a publisher under a real Supervisor.

`make_broker(dynamic_security=True)` adds a listener with Mosquitto's dynamic security plugin (the broker's
`dynamic_security` attribute: its port and admin account), as provisioning uses it.
"""

from __future__ import annotations

import asyncio
import glob
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.core.outbox import Outbox, Record
from agent.core.runtime import Backoff, Health, Supervisor
from agent.northbound.mqtt import MqttPublisher, MqttSection, create_mqtt_publisher
from agent.security.sealer import Sealer

from .broker import Consumer, Mosquitto, Pki, _listening, free_port, make_pki, mosquitto_available

DEVICE = "test-truck"


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@dataclass(frozen=True)
class DynamicSecurity:
    """The plugin's listener (no anonymous access) and its admin (the dynsec `admin` role)."""

    port: int
    admin_username: str
    admin_password: str
    config_file: Path


def dynamic_security_plugin() -> str | None:
    found = sorted(glob.glob("/usr/lib/*/mosquitto_dynamic_security.so"))  # Debian's multiarch path
    return found[0] if found else None


def add_dynamic_security(broker: Mosquitto) -> DynamicSecurity:
    """Before start(): one more listener, on which the plugin authenticates and authorizes every client
    (per_listener_settings: the other listeners keep their own rules). Its config file is made by
    Mosquitto's own `mosquitto_ctrl dynsec init`."""
    plugin = dynamic_security_plugin()
    if plugin is None:
        pytest.fail("mosquitto_dynamic_security.so not found (Debian: apt-get install mosquitto)")
    security = DynamicSecurity(
        free_port(), "operator", "operator-admin-pass", broker.directory / "dynamic-security.json"
    )
    subprocess.run(
        ["mosquitto_ctrl", "dynsec", "init", str(security.config_file), security.admin_username,
         security.admin_password],
        check=True, capture_output=True,
    )  # fmt: skip
    with broker.config.open("a") as config:
        config.write(
            f"listener {security.port} 127.0.0.1\nallow_anonymous false\n"
            f"plugin {plugin}\nplugin_opt_config_file {security.config_file}\n"
        )
    broker.dynamic_security = security  # type: ignore[attr-defined]
    return security


def start_broker(directory: Path, pki: Pki, *, dynamic_security: bool = False, **options: Any) -> Mosquitto:
    broker = Mosquitto(directory, pki, **options)
    security = add_dynamic_security(broker) if dynamic_security else None
    broker.start()
    deadline = time.monotonic() + 10
    while security is not None and not _listening(security.port):
        if time.monotonic() > deadline:
            broker.kill()
            raise RuntimeError(
                f"the dynamic security listener did not open: {broker.log.read_text()[-2000:]}"
            )
        time.sleep(0.02)
    return broker


@pytest.fixture
def make_broker(tmp_path: Path, pki: Pki) -> Iterator[Callable[..., Mosquitto]]:
    if not mosquitto_available():
        pytest.fail("Mosquitto is not installed (Debian: apt-get install mosquitto mosquitto-clients)")
    brokers: list[Mosquitto] = []

    def make(**options: Any) -> Mosquitto:
        broker = start_broker(tmp_path / f"broker{len(brokers)}", pki, **options)
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.kill()


@pytest.fixture
def broker(make_broker: Callable[..., Mosquitto]) -> Mosquitto:
    return make_broker()


@pytest.fixture
def consumer_for() -> Iterator[Callable[..., Consumer]]:
    consumers: list[Consumer] = []

    def make(port: int, **options: Any) -> Consumer:
        consumers.append(Consumer(port, **options))
        return consumers[-1]

    yield make
    for consumer in consumers:
        consumer.close()


def reading(provider: str, service: str, resource: str, value: object) -> tuple[str, bytes]:
    """An outbox item as the recorder writes it."""
    document = {
        "provider": provider,
        "service": service,
        "resource": resource,
        "value": value,
        "timestamp": "now",
    }
    return f"{provider}/{service}/{resource}", json.dumps(document, separators=(",", ":")).encode()


class Harness:
    """An outbox and a publisher supervised (restart with short backoff) on an event loop in a thread."""

    def __init__(self, directory: Path) -> None:
        self.outbox = Outbox(directory / "outbox.db", synchronous="NORMAL")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="mqtt-test-loop", daemon=True)
        self.thread.start()
        self.supervisor: Supervisor | None = None
        self.publisher: MqttPublisher | None = None

    def start(self, sealer: Sealer | None = None, **settings: Any) -> MqttPublisher:
        section = MqttSection.model_validate({"host": "127.0.0.1", **settings})
        self.publisher = create_mqtt_publisher(section, DEVICE, self.outbox, sealer, profile="development")
        self.supervisor = Supervisor([self.publisher], Backoff(0.05, 0.5, jitter=0.0), stable_after=5.0)
        self.call(self.supervisor.start())
        return self.publisher

    def call(self, coroutine: Any, timeout: float = 15) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def append(self, items: list[tuple[str, bytes]]) -> list[Record]:
        return self.outbox.append_many(items)

    def health(self) -> Health:
        assert self.supervisor is not None
        return self.supervisor.health_of("mqtt")

    def restarts(self) -> int:
        assert self.supervisor is not None
        return self.supervisor.records["mqtt"].restarts

    def depth(self) -> int:
        return next(s.depth for s in self.outbox.stats().sinks if s.name == "mqtt")

    def wait_drained(self, timeout: float = 20) -> None:
        wait_until(lambda: self.depth() == 0, timeout)

    def close(self) -> None:
        if self.supervisor is not None:
            self.call(self.supervisor.stop(5))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()
        self.outbox.close()


def wait_until(predicate: Callable[[], object], timeout: float = 10.0, message: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(message or "condition not met in time")
        time.sleep(0.02)


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.close()
