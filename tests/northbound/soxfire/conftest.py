"""Fixtures of the SOX tests: a real Prosody per test (TLS with a session CA, an anonymous host, the pubsub
component, password accounts), and a model + outbox + recorder + SOX components run by a real supervisor."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.core.model import Model, ResourceKind, ResourceSpec, ValueMode, value_type
from agent.core.outbox import Outbox
from agent.core.recorder import Recorder
from agent.core.runtime import Backoff, Component, Supervisor
from agent.northbound.soxfire import SoxfireSection, create_sox_components

from .keio_client import KeioSubscriber
from .prosody import Pki, Prosody, available

pytestmark = pytest.mark.skipif(not available(), reason="prosody is not installed")

HOSTS = ["localhost", "pubsub.localhost", "anon.localhost"]
USERS = {"sox": "soxpass", "plain": "plainpass", "operator": "oppass", "boss": "bosspass"}


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    pki = Pki(tmp_path_factory.mktemp("pki"))
    pki.issue("server", HOSTS)
    return pki


@pytest.fixture
def prosody_factory(tmp_path: Path, pki: Pki) -> Iterator[Callable[..., Prosody]]:
    servers: list[Prosody] = []

    def make(name: str = "prosody", **options: Any) -> Prosody:
        server = Prosody(
            tmp_path / name,
            pki.directory / "server.crt",
            pki.directory / "server.key",
            admins=("sox", "boss"),
            users=dict(USERS),
            **options,
        )
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def prosody(prosody_factory: Callable[..., Prosody]) -> Prosody:
    return prosody_factory().start()


@pytest.fixture
def password_file(tmp_path: Path) -> Callable[[str], str]:
    def write(password: str) -> str:
        path = tmp_path / f"password-{password}"
        path.write_text(password + "\n")
        return f"file:{path}"

    return write


@pytest.fixture
def section(prosody: Prosody, pki: Pki, password_file: Callable[[str], str]) -> Callable[..., SoxfireSection]:
    def make(**overrides: Any) -> SoxfireSection:
        user = overrides.pop("user", "sox")
        fields: dict[str, Any] = {
            "jid": f"{user}@localhost",
            "password": password_file(USERS.get(user, "wrong")),
            "host": "127.0.0.1",
            "port": prosody.port,
            "ca_file": str(pki.ca),
            "connect_timeout": 5.0,
            "iq_timeout": 5.0,
        }
        fields.update(overrides)
        return SoxfireSection.model_validate(fields)

    return make


def truck_model() -> Model:
    model = Model()
    double = value_type("double")
    model.ensure_resource(
        "truck1", "env", "temperature", ResourceSpec(double, metadata={"unit": "degC", "min": -40, "max": 85})
    )
    model.ensure_resource("truck1", "env", "humidity", ResourceSpec(double, metadata={"unit": "%"}))
    model.ensure_resource(
        "truck1",
        "control",
        "setpoint",
        ResourceSpec(
            double, ResourceKind.STATE_VARIABLE, ValueMode.MODIFIABLE, metadata={"min": 0, "max": 100}
        ),
    )
    model.ensure_resource("truck2", "gps", "speed", ResourceSpec(double))
    return model


class Rig:
    """Model → recorder → outbox → SOX components, supervised as in the agent (fast backoff)."""

    def __init__(self, tmp_path: Path, model: Model, section: SoxfireSection) -> None:
        self.model = model
        self.outbox = Outbox(tmp_path / "outbox.db", synchronous="NORMAL")
        self.recorder = Recorder(model, self.outbox)
        self.components = create_sox_components(section, model, self.outbox)
        self.supervisor = Supervisor([self.recorder, *self.components], backoff=Backoff(0.2, 1.0, 0.0))

    @property
    def publisher(self) -> Any:
        return self.components[0]

    def health(self, name: str = "soxfire") -> Any:
        return self.supervisor.health_of(name)

    def pending(self) -> int:
        return next(s.depth for s in self.outbox.stats().sinks if s.name == "soxfire")

    async def close(self) -> None:
        await self.supervisor.stop(5)
        await asyncio.to_thread(self.outbox.close)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Callable[..., Rig]]:
    rigs: list[Rig] = []

    async def make(section: SoxfireSection, model: Model | None = None, start: bool = True) -> Rig:
        made = Rig(tmp_path / f"rig{len(rigs)}", model or truck_model(), section)
        rigs.append(made)
        if start:
            await made.supervisor.start()
        return made

    yield make  # type: ignore[misc]
    for made in rigs:
        await made.close()


@pytest.fixture
async def subscriber(prosody: Prosody, pki: Pki) -> AsyncIterator[KeioSubscriber]:
    client = KeioSubscriber(prosody.anon_domain, prosody.pubsub, "127.0.0.1", prosody.port, str(pki.ca))
    await client.connect()
    yield client
    with contextlib.suppress(Exception):
        await client.close()


async def until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


__all__ = ["Component", "Rig", "truck_model", "until"]
