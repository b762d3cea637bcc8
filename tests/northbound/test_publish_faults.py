"""A real agent publishing to SOX and MQTT at once while each server is stopped and restarted twice.

The agent (run_agent: config text → build_agent → its own event loop) runs the simulated truck at 10 Hz; the
recorder commits every reading to the outbox, and the SOXFire and MQTT publishers each drain it to a real
Prosody and a real Mosquitto. For 60 s of readings Prosody goes down at ~8 s and ~30 s and Mosquitto at
~18 s and ~42 s (~5 s each, staggered: one publisher is down while the other keeps going). Then the driver
stops, both sinks drain, and every reading the outbox committed (ids 1..appended_total of a fresh outbox)
must be found at both consumers, in order per stream, repeated only by uid:

- SOX: the server's own node history (`data_max_items`, Prosody's file storage) read back afterwards;
- MQTT: a subscriber with a persistent session (clean_start false, session expiry, QoS 1) connected before
  the agent started, so the broker queues for it whatever arrives while it reconnects.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.northbound.soxfire.session import Endpoint, SoxSession
from agent.northbound.soxfire.wire import parse_data
from tests.conftest import AgentThread, wait_until
from tests.northbound.mqtt.broker import Consumer, Mosquitto, check_delivery, make_pki, mosquitto_available
from tests.northbound.soxfire.prosody import Pki, Prosody, available

READINGS_FOR = 60.0  # seconds of readings
# (seconds after the agent started, server) → stopped for DOWN_FOR seconds, then started again.
OUTAGES = [(8.0, "prosody"), (18.0, "mosquitto"), (30.0, "prosody"), (42.0, "mosquitto")]
DOWN_FOR = 5.0
USERS = {"sox": "soxpass", "boss": "bosspass"}


@dataclass(frozen=True)
class SoxRecord:
    """A reading as a SOX consumer sees it (the shape check_delivery reads: uid, stream, seq)."""

    uid: str
    stream: str
    seq: int


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[Prosody, Mosquitto]]:
    if not available():
        pytest.fail("Prosody is not installed (Debian: apt-get install prosody)")
    if not mosquitto_available():
        pytest.fail("Mosquitto is not installed (Debian: apt-get install mosquitto mosquitto-clients)")
    sox_pki = Pki(tmp_path / "sox-pki")
    cert, key = sox_pki.issue("server", ["localhost", "pubsub.localhost", "anon.localhost"])
    prosody = Prosody(tmp_path / "prosody", cert, key, admins=("sox", "boss"), users=dict(USERS))
    broker = Mosquitto(tmp_path / "mosquitto", make_pki(tmp_path / "mqtt-pki"))
    try:
        prosody.start()
        broker.start()
        yield prosody, broker
    finally:
        prosody.stop()
        broker.kill()


def agent_config(prosody: Prosody, broker: Mosquitto, password_file: Path) -> str:
    return f"""
[runtime]
restart_initial = 0.1
restart_max = 0.5

[[drivers]]
type = "simulated"
id = "sim"
rate_hz = 10.0
seed = 7

[soxfire]
jid = "sox@{prosody.domain}"
password = "file:{password_file}"
host = "127.0.0.1"
port = {prosody.port}
ca_file = "{prosody.cert.parent / "ca.crt"}"
data_max_items = 100000
connect_timeout = 5.0
iq_timeout = 5.0

[mqtt]
host = "127.0.0.1"
port = {broker.port}
qos = 1
"""


async def sox_history(prosody: Prosody) -> list[SoxRecord]:
    """Every reading in the server's _data node histories, in the order the server lists them."""
    reader = SoxSession(
        Endpoint(
            f"boss@{prosody.domain}",
            USERS["boss"],
            "127.0.0.1",
            prosody.port,
            ca_file=str(prosody.cert.parent / "ca.crt"),
            connect_timeout=10.0,
            iq_timeout=30.0,
        )
    )
    await reader.open()
    try:
        out: list[SoxRecord] = []
        for node in sorted(await reader.node_names(prosody.pubsub)):
            if not node.endswith("_data"):
                continue
            device = node.removesuffix("_data")
            for item in await reader.items(prosody.pubsub, node, 100000):
                for value in parse_data(item).values:
                    raw = json.loads(value.raw_value or "{}")
                    out.append(SoxRecord(raw["uid"], f"{device}/{value.id}", int(raw["seq"])))
        return out
    finally:
        await reader.close()


def test_prosody_and_mosquitto_each_restarted_twice_lose_and_reorder_nothing(
    run_agent: Callable[..., AgentThread], servers: tuple[Prosody, Mosquitto], tmp_path: Path
) -> None:
    prosody, broker = servers
    password = tmp_path / "sox.pass"
    password.write_text(USERS["sox"] + "\n")
    consumer = Consumer(broker.port, client_id="publish-faults-consumer")  # persistent session, QoS 1
    try:
        runner = run_agent(agent_config(prosody, broker, password))
        agent = runner.agent
        start = time.monotonic()
        for at, name in OUTAGES:
            server = prosody if name == "prosody" else broker
            time.sleep(max(0.0, start + at - time.monotonic()))
            server.stop()
            time.sleep(DOWN_FOR)  # readings keep coming into the outbox meanwhile
            server.start()
        time.sleep(max(0.0, start + READINGS_FOR - time.monotonic()))

        # Stop the driver (a clean stop: the supervisor does not restart it), then let both sinks drain.
        driver = next(c for c in agent.components if type(c).__module__.startswith("agent.drivers."))
        asyncio.run_coroutine_threadsafe(driver.stop(), runner.loop).result(10)
        outbox = agent.outbox

        def drained() -> bool:
            before = outbox.stats().appended_total
            time.sleep(0.3)
            stats = outbox.stats()
            cursors = {s.name: s.cursor for s in stats.sinks}
            return stats.appended_total == before and all(
                cursors[sink] == before for sink in ("soxfire", "mqtt")
            )

        wait_until(drained, 60)
        appended = outbox.stats().appended_total
        assert appended >= 500  # 60 s at 10 Hz, several readings per tick
        supervisor = agent.runtime.supervisor
        assert supervisor.records["soxfire"].restarts >= 2
        assert supervisor.records["mqtt"].restarts >= 2

        # MQTT: everything the outbox committed reaches the persistent-session subscriber.
        def mqtt_ids() -> set[int]:
            return {int(r.uid.rsplit("-", 1)[1]) for _, r in consumer.records()}

        wait_until(lambda: set(range(1, appended + 1)) <= mqtt_ids(), 30)
        records = consumer.records()
        epoch = records[0][1].uid.rsplit("-", 1)[0]
        expected = {f"{epoch}-{i}" for i in range(1, appended + 1)}
        counts = check_delivery(records, expected)
        assert counts.keys() == expected

        # SOX: the server's node history holds each committed reading, in order per stream.
        history = asyncio.run(asyncio.wait_for(sox_history(prosody), 60))
        counts = check_delivery([("", r) for r in history], expected)
        assert counts.keys() == expected
        streams = {r.stream for _, r in records}
        assert streams == {r.stream for r in history}
    finally:
        consumer.close()
