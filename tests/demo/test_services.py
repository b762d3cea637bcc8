"""agent/demo/services.py: the throw-away Prosody and Mosquitto of `msec-agent run --demo`, for real."""

from __future__ import annotations

import socket
import ssl
import stat
import threading
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from agent.app import extensions
from agent.cli import demo_config_path
from agent.core.config import load_config
from agent.core.outbox import Outbox
from agent.demo.services import DIRECTORY, start_services
from agent.northbound.mqtt import MqttSection
from agent.northbound.soxfire import SoxfireSection
from tests.conftest import wait_until

from .conftest import DEVICE, accepts, needs_servers, readings, services_json, start_demo


def _mqtt_login(port: int, ca: str, username: str, password: str) -> str:
    """The CONNACK reason of a TLS login (verified against the demo CA)."""
    outcome: list[str] = []
    done = threading.Event()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{username}", protocol=paho.MQTTv5)
    client.tls_set_context(ssl.create_default_context(cafile=ca))
    client.username_pw_set(username, password)

    def on_connect(_client, _userdata, _flags, reason, _properties) -> None:
        outcome.append(str(reason))
        done.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port, 10)
    client.loop_start()
    try:
        assert done.wait(10), "no CONNACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return outcome[0]


@needs_servers
def test_both_servers_start_and_their_overrides_are_a_valid_demo_config(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with start_services(state, DEVICE) as services:
        assert [s.name for s in services.servers] == ["prosody", "mosquitto"]
        assert all(s.process.poll() is None and accepts(s.port) for s in services.servers)
        config = load_config(
            demo_config_path(), extensions(), {"agent": {"state_dir": str(state)}, **services.overrides}
        )
        sox, mqtt = config.section("soxfire"), config.section("mqtt")
        assert isinstance(sox, SoxfireSection) and isinstance(mqtt, MqttSection)
        assert sox.jid == f"{DEVICE}@localhost" and sox.tls == "starttls" and sox.ca_file
        assert mqtt.tls is not None and mqtt.tls.ca_file == sox.ca_file and mqtt.username == DEVICE
        # Secrets are file: references to 0600 files in the state directory, never inline.
        for reference in (sox.password, mqtt.password):
            assert reference is not None and reference.startswith(f"file:{state / DIRECTORY}/")
            assert stat.S_IMODE(Path(reference[5:]).stat().st_mode) == 0o600
        described = services_json(state)
        assert described["device"] == DEVICE and described["sox"]["port"] == sox.port
        assert described["mqtt"]["port"] == mqtt.port

        # The broker's certificate verifies against the demo CA, the device's password is checked.
        password = Path(mqtt.password[5:]).read_text().strip()
        assert _mqtt_login(mqtt.effective_port, mqtt.tls.ca_file, DEVICE, password) == "Success"
        assert _mqtt_login(mqtt.effective_port, mqtt.tls.ca_file, DEVICE, "wrong") != "Success"
        # Prosody speaks XMPP on its port (STARTTLS follows the stream header).
        with socket.create_connection(("127.0.0.1", sox.port), timeout=5) as xmpp:
            xmpp.sendall(
                b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' "
                b"xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
            )
            assert b"starttls" in xmpp.recv(4096)
        ports = [s.port for s in services.servers]
        processes = [s.process for s in services.servers]
    # Stopped and cleaned up: processes gone, ports closed, passwords and certificates removed.
    assert all(p.poll() is not None for p in processes)
    assert not any(accepts(port) for port in ports)
    assert not (state / DIRECTORY).exists()


def test_missing_servers_are_reported_and_nothing_is_configured(tmp_path: Path) -> None:
    with start_services(tmp_path / "state", DEVICE, find=lambda name: None) as services:
        assert services.servers == [] and services.overrides == {}
        banner = services.banner()
    assert "no Prosody: not installed" in banner and "no Mosquitto: not installed" in banner
    assert "every reading stays in the outbox" in banner
    assert not (tmp_path / "state" / DIRECTORY).exists()


def test_an_unusable_state_dir_is_reported_not_raised(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    services = start_services(blocker / "state", DEVICE)
    assert services.servers == [] and services.overrides == {}
    assert "cannot prepare" in services.banner()
    services.stop()


@needs_servers
def test_the_demo_agent_publishes_to_both_and_stops_them_when_it_stops(tmp_path: Path) -> None:
    agent = start_demo(tmp_path)
    try:
        described = services_json(agent.state_dir)
        ports = [described["sox"]["port"], described["mqtt"]["port"]]
        wait_until(
            lambda: all(agent.components().get(c, {}).get("state") == "ok" for c in ("soxfire", "mqtt")),
            timeout=30,
        )
        assert "watch what leaves the device:  msec-agent watch --demo --state-dir" in agent.text()
    finally:
        assert agent.stop() == 0
    assert not any(accepts(port) for port in ports)
    assert not (agent.state_dir / DIRECTORY).exists()
    assert "Traceback" not in agent.text(), agent.text()


def test_without_services_the_agent_says_so_and_keeps_readings_in_the_outbox(tmp_path: Path) -> None:
    agent = start_demo(tmp_path, "--no-services")
    try:
        assert "demo services: off (--no-services): readings stay in the outbox" in agent.text()
        assert not {"soxfire", "mqtt"} & set(agent.components())
        wait_until(lambda: readings(agent.port) >= 10, timeout=30)
    finally:
        assert agent.stop() == 0
    assert not (agent.state_dir / DIRECTORY).exists()
    with Outbox(agent.state_dir / "outbox.db") as outbox:
        assert outbox.sinks() == []  # no publisher ever registered
        outbox.register_sink("check")
        assert len(outbox.peek("check", limit=100_000)) >= 10  # kept: no publisher took them away
