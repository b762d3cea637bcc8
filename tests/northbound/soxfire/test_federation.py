"""SOX federation: our agent publishes on server A, an anonymous reader of server B subscribes across s2s.

Two Prosody processes on two loopback addresses, each with its own domain (a.sox.test on 127.0.0.1,
b.sox.test on 127.0.0.2). Server-to-server streams use STARTTLS with certificates from the session's test
CA, and are authenticated by those certificates (s2s_secure_auth: no dialback fallback).

Name resolution without DNS and without /etc/hosts: each server's libunbound (Prosody's `unbound` option,
lua-unbound) gets the other domain as a local `redirect` zone whose SRV record points at the other
server's s2s port (a free port, not 5269), and a hosts file (`hoststxt`) maps that SRV target to the other
loopback address. `resolvconf = false` keeps the system resolver out of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.northbound.soxfire import SoxfireSection

from .conftest import truck_model, until
from .keio_client import KeioSubscriber, transducers
from .prosody import Pki, Prosody, available, free_port

pytestmark = pytest.mark.skipif(not available(), reason="prosody is not installed")

# Prosody's `unbound` option (hosts file, local SRV data) needs lua-unbound; without it both are ignored.
UNBOUND = any(
    next(Path(d).glob("**/lunbound.so"), None) for d in ("/usr/lib", "/usr/local/lib") if Path(d).is_dir()
)


class FederatedProsody(Prosody):
    """One side of the federation: s2s on its own port, peers verified against the test CA, and the
    peer's domain resolved locally (see the module docstring)."""

    ca: Path | None = None
    peer_domain: str = ""
    peer_target: str = ""
    peer_s2s_port: int = 0

    def write_config(self) -> None:
        super().write_config()
        text = self.config_path.read_text()
        # The helper's config must still have the lines patched here (loud failure if it changes).
        assert "s2s_secure_auth = false" in text and f'certificate = "{self.cert}" }}' in text, text
        text = text.replace(
            "s2s_secure_auth = false", "s2s_secure_auth = true\ns2s_require_encryption = true"
        )
        text = text.replace(
            f'certificate = "{self.cert}" }}', f'certificate = "{self.cert}"; cafile = "{self.ca}" }}'
        )
        # Global options must come before the first VirtualHost line.
        srv = f"{self.peer_domain}. 60 IN SRV 0 0 {self.peer_s2s_port} {self.peer_target}."
        resolver = (
            "use_ipv6 = false\n"
            "unbound = {\n"
            f'  hoststxt = "{self.hosts_file}";\n'
            "  resolvconf = false;\n"
            "  options = {\n"
            f'    ["local-zone:"] = "{self.peer_domain}. redirect";\n'
            f'    ["local-data:"] = "{srv}";\n'
            "  };\n"
            "}\n"
        )
        text = text.replace(f'unbound = {{ hoststxt = "{self.hosts_file}" }}', "")
        head, sep, tail = text.partition('\nVirtualHost "')
        self.config_path.write_text(head + "\n" + resolver + sep + tail)


def _hosts(domain: str) -> list[str]:
    return [domain, f"pubsub.{domain}", f"anon.{domain}"]


@pytest.fixture
def federation(tmp_path: Path, pki: Pki) -> Iterator[Callable[[], tuple[FederatedProsody, FederatedProsody]]]:
    servers: list[FederatedProsody] = []

    def start() -> tuple[FederatedProsody, FederatedProsody]:
        hosts = tmp_path / "hosts"
        # SRV targets: names outside the redirected zones, mapped to the loopback addresses here.
        hosts.write_text("127.0.0.1 s2s-a.sox.invalid\n127.0.0.2 s2s-b.sox.invalid\n")
        sides = [("a", "127.0.0.1", "s2s-a.sox.invalid"), ("b", "127.0.0.2", "s2s-b.sox.invalid")]
        ports = {name: free_port(address) for name, address, _ in sides}
        made: dict[str, FederatedProsody] = {}
        for name, address, _ in sides:
            domain = f"{name}.sox.test"
            cert, key = pki.issue(f"fed-{name}", _hosts(domain))
            peer, peer_target = ("b", "s2s-b.sox.invalid") if name == "a" else ("a", "s2s-a.sox.invalid")
            server = FederatedProsody(
                tmp_path / f"prosody-{name}",
                cert,
                key,
                domain=domain,
                address=address,
                admins=("sox",),
                users={"sox": "soxpass"},
                pubsub_storage="memory",
                s2s=True,
                hosts_file=hosts,
                s2s_port=ports[name],
            )
            server.ca = pki.ca
            server.peer_domain = f"{peer}.sox.test"
            server.peer_target = peer_target
            server.peer_s2s_port = ports[peer]
            servers.append(server)
            made[name] = server.start()
        return made["a"], made["b"]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
async def remote_reader(pki: Pki) -> AsyncIterator[Callable[..., Any]]:
    clients: list[KeioSubscriber] = []

    async def connect(home: Prosody, remote: Prosody) -> KeioSubscriber:
        # Logged in anonymously at B (its address, its anonymous host), reading A's pubsub service.
        client = KeioSubscriber(home.anon_domain, remote.pubsub, home.address, home.port, str(pki.ca))
        clients.append(client)
        await client.connect()
        return client

    yield connect
    for client in clients:
        with contextlib.suppress(Exception):
            await client.close()


@pytest.mark.skipif(not UNBOUND, reason="lua-unbound is not installed (Prosody's hosts file needs it)")
async def test_an_anonymous_reader_of_another_server_gets_every_reading_over_s2s(
    federation, remote_reader, rig, pki, password_file, tmp_path
) -> None:
    a, b = federation()
    section = SoxfireSection.model_validate(
        {
            "jid": f"sox@{a.domain}",
            "password": password_file("soxpass"),
            "host": a.address,
            "port": a.port,
            "ca_file": str(pki.ca),
            "connect_timeout": 10.0,
            "iq_timeout": 10.0,
        }
    )
    r = await rig(section, truck_model())
    await until(lambda: r.publisher.metas_published >= 2)

    reader = await remote_reader(b, a)
    assert str(reader.xmpp.boundjid.domain) == b.anon_domain  # a user of B, not of A
    assert set(await reader.devices()) == {"truck1", "truck2"}  # disco#items at pubsub.a over s2s
    assert transducers(await reader.meta("truck1"))["env/temperature"]["units"] == "degC"
    senders: list[str] = []
    reader.xmpp.add_event_handler("pubsub_publish", lambda m: senders.append(str(m["from"])))
    await reader.subscribe("truck1")
    await reader.subscribe("truck2")

    for i in range(200):
        r.model.update("truck1", "env", "temperature", 20.0 + i / 10, timestamp=1_700_000_000 + i)
        r.model.update("truck2", "gps", "speed", float(i), timestamp=1_700_000_000 + i)
    await until(lambda: len(reader.readings) >= 400, timeout=30)
    await until(lambda: r.pending() == 0)
    await asyncio.sleep(0.3)  # nothing more may arrive (duplicates would show here)

    temps = [x for x in reader.readings if x.device == "truck1"]
    speeds = [x for x in reader.readings if x.device == "truck2"]
    assert [float(x.typed) for x in temps] == [20.0 + i / 10 for i in range(200)]
    assert [float(x.typed) for x in speeds] == [float(i) for i in range(200)]
    assert len({x.uid for x in reader.readings}) == len(reader.readings) == 400
    assert json.loads(temps[0].raw or "{}")["uid"]
    assert set(senders) == {a.pubsub}  # events come from A's service, relayed by B

    # Really server-to-server, and authenticated by the CA-issued certificates both ways (SASL EXTERNAL
    # on the s2s streams; s2s_secure_auth leaves no dialback fallback).
    def logged(server: Prosody, line: str) -> bool:
        return line in (server.directory / "prosody.log").read_text()

    await until(lambda: logged(a, f"Accepting SASL EXTERNAL identity from {b.anon_domain}"))
    await until(lambda: logged(a, f"Incoming s2s connection {b.anon_domain}->{a.pubsub} complete"))
    await until(lambda: logged(b, f"Accepting SASL EXTERNAL identity from {a.pubsub}"))
    assert a.running and b.running
