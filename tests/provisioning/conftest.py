"""Fixtures of the provisioning tests: real parts on loopback.

A fleet = the operator's side (fleet file, SSH keys, fleet CA, inventory, a recipient key) + devices, each
a real sshd with its own host key, a prefix with the agent, and its own swtpm behind tpm2-abrmd; + a
Prosody with in-band registration and admin commands. The tool runs as the operator would run it: the
`provisioning/provision` script in a child process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion

from tests.northbound.mqtt.broker import Consumer, Mosquitto, make_pki, mosquitto_available
from tests.northbound.mqtt.conftest import start_broker
from tests.northbound.soxfire.conftest import pki, prosody_factory  # noqa: F401  (fixtures)
from tests.northbound.soxfire.prosody import Prosody
from tests.northbound.soxfire.prosody import available as prosody_available
from tests.security.keystore.conftest import session_bus  # noqa: F401  (fixture)
from tests.security.keystore.swtpm import SessionBus, Swtpm, missing_tools

from .sshd import REPO, DeviceHost, available, keypair

TOOL = REPO / "provisioning" / "provision"
ADMIN_PASSWORD = "soxpass"  # the test Prosody's admin account `sox` (tests/northbound/soxfire/conftest.py)

TEMPLATE = """# The fleet's part of agent.toml: ${device_id} and the device's vars are filled in per device.
[outbox]
synchronous = "NORMAL"

[http]
listen = "127.0.0.1:${http_port}"

[[drivers]]
type = "simulated"
id = "sim"
provider = "${device_id}"
rate_hz = 5.0
gps = false
seed = 7

[sealing]
default = "signed"
"""


def toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value))


def make_ca(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "M-Sec test fleet CA")])
    now = time.time()
    import datetime

    start = datetime.datetime.fromtimestamp(now - 60, datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "fleet-ca.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "fleet-ca.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return directory / "fleet-ca.crt", directory / "fleet-ca.key"


class Fleet:
    """The operator's directory and the devices it provisions; `run()` calls the tool."""

    def __init__(self, root: Path, prosody: Prosody, ca_file: Path, bus: SessionBus) -> None:
        self.root, self.prosody, self.ca_file, self.bus = root, prosody, ca_file, bus
        self.devices: dict[str, DeviceHost] = {}
        self.tpms: dict[str, Swtpm] = {}
        self.entries: dict[str, dict[str, Any]] = {}
        self.settings: dict[str, dict[str, Any]] = {}
        root.mkdir(parents=True, exist_ok=True)
        self.operator_key = keypair(root / "keys/operator", "operator")
        self.bootstrap_key = keypair(root / "keys/bootstrap", "image bootstrap")
        make_ca(root / "ca")
        (root / "agent.toml.in").write_text(TEMPLATE)
        recipient = ec.generate_private_key(ec.SECP256R1()).public_key()
        (root / "recipients").mkdir()
        (root / "recipients/city.pem").write_bytes(
            recipient.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    @property
    def path(self) -> Path:
        return self.root / "fleet.toml"

    @property
    def inventory(self) -> dict[str, dict[str, Any]]:
        path = self.root / "devices.json"
        return {d["id"]: d for d in json.loads(path.read_text())["devices"]} if path.exists() else {}

    def add_device(self, device_id: str, *, fingerprint: bool = True, tpm: Swtpm | None = None) -> DeviceHost:
        host = DeviceHost(
            self.root / "devices-sim" / device_id, self.bootstrap_key.with_suffix(".pub").read_text()
        )
        host.install().start()
        self.devices[device_id] = host
        if tpm is None:
            tpm = Swtpm(self.root / "tpm" / device_id / "state", self.bus).start()
            self.tpms[device_id] = tpm
        entry: dict[str, Any] = {
            "id": device_id,
            "host": "127.0.0.1",
            "port": host.port,
            "vars": {"http_port": str(host.http_port)},
            "profile": host.profile({"DBUS_SESSION_BUS_ADDRESS": self.bus.address, "TSS2_LOG": "all+none"}),
            "keystore": {"tcti": tpm.tcti},
        }
        if fingerprint:
            entry["host_key_fingerprint"] = host.host_fingerprint
        self.entries[device_id] = entry
        self.write()
        return host

    def alias(self, device_id: str, existing: str) -> None:
        """A fleet entry under another id for a device already listed (same host, same TPM)."""
        self.entries[device_id] = {**self.entries[existing], "id": device_id}
        self.write()

    def set_template(self, text: str) -> None:
        (self.root / "agent.toml.in").write_text(text)

    def write(self) -> None:
        p = self.prosody
        sections = {
            "fleet": {
                "inventory": "devices.json",
                "known_hosts": "known_hosts",
                "operator_key": "keys/operator",
                "bootstrap_key": "keys/bootstrap",
                "ca_cert": "ca/fleet-ca.crt",
                "ca_key": "ca/fleet-ca.key",
                "config_template": "agent.toml.in",
                "publish_timeout": 45,
                **self.settings.get("fleet", {}),
            },
            "xmpp": {
                "domain": p.domain,
                "host": "127.0.0.1",
                "port": p.port,
                "ca_file": str(self.ca_file),
                "admin_jid": f"sox@{p.domain}",
                "admin_password": f"file:{self.root / 'admin.pass'}",
                **self.settings.get("xmpp", {}),
            },
            "recipients": {"city": "recipients/city.pem"},
            **{name: self.settings[name] for name in ("mqtt", "wifi") if name in self.settings},
        }
        (self.root / "admin.pass").write_text(ADMIN_PASSWORD + "\n")
        lines = []
        for name, table in sections.items():
            lines.append(f"[{name}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
            lines.append("")
        for entry in self.entries.values():
            lines.append("[[devices]]")
            lines += [f"{k} = {toml_value(v)}" for k, v in entry.items()]
            lines.append("")
        self.path.write_text("\n".join(lines))

    def command(self, *args: str) -> list[str]:
        return [sys.executable, str(TOOL), str(self.path), *args]

    def run(self, *args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k != "SSH_AUTH_SOCK"}  # only the fleet's keys
        return subprocess.run(self.command(*args), capture_output=True, text=True, timeout=timeout, env=env)

    def interrupt_at(self, marker: str, *args: str) -> tuple[int, str]:
        """Runs the tool and sends it SIGINT (Ctrl-C) once `marker` appears in its output."""
        process = subprocess.Popen(
            self.command(*args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True,
        )  # fmt: skip
        assert process.stdout is not None
        seen = []
        for line in process.stdout:
            seen.append(line)
            if marker in line:
                os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole foreground group
                break
        seen.append(process.stdout.read())
        return process.wait(60), "".join(seen)

    def close(self) -> None:
        for host in self.devices.values():
            host.stop()
        for tpm in self.tpms.values():
            tpm.stop()


def publish_as(port: int, username: str, password: str, topic: str) -> str:
    """One QoS 1 PUBLISH by MQTT 5: "accepted", the PUBACK's refusal ("Not authorized"), or the CONNACK's."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"probe-{username}", protocol=paho.MQTTv5)
    client.username_pw_set(username, password)
    outcome: list[str] = []
    done = threading.Event()

    def on_connect(c, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            outcome.append(f"connect: {reason}")
            done.set()
        else:
            c.publish(topic, b"probe", qos=1)

    def on_publish(c, userdata, mid, reason, properties) -> None:
        outcome.append(str(reason) if reason.is_failure else "accepted")  # or "No matching subscribers"
        done.set()

    client.on_connect, client.on_publish = on_connect, on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert done.wait(10), "no PUBACK / CONNACK"
    finally:
        client.disconnect()
        client.loop_stop()
    return outcome[0]


@pytest.fixture
def xmpp_server(prosody_factory: Callable[..., Prosody]) -> Prosody:  # noqa: F811
    return prosody_factory(registration=True, admin_commands=True).start()


@pytest.fixture
def fleet(tmp_path: Path, xmpp_server: Prosody, pki: Any, session_bus: SessionBus) -> Iterator[Fleet]:  # noqa: F811
    if not available():
        pytest.skip("provisioning tests need openssh-server and openssh-client")
    if not prosody_available() or missing_tools():
        pytest.skip("provisioning tests need prosody, swtpm, tpm2-abrmd and dbus")
    made = Fleet(tmp_path / "operator", xmpp_server, pki.ca, session_bus)
    yield made
    made.close()


@pytest.fixture
def mqtt_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A real Mosquitto with a dynamic security listener (`.dynamic_security`) and an anonymous one."""
    if not mosquitto_available():
        pytest.skip("MQTT provisioning tests need mosquitto")
    broker = start_broker(tmp_path / "mqtt", make_pki(tmp_path / "mqtt-pki"), dynamic_security=True)
    yield broker
    broker.kill()


@pytest.fixture
def mqtt_watcher(mqtt_broker: Mosquitto) -> Iterator[Consumer]:
    """Another client of the broker, on its anonymous listener: sees every topic the broker let through."""
    watcher = Consumer(mqtt_broker.port, "#", client_id="watcher")
    yield watcher
    watcher.close()


@pytest.fixture
def device_host(tmp_path: Path) -> Iterator[tuple[DeviceHost, Path]]:
    """One device stand-in (sshd + prefix), without TPM or XMPP; and the bootstrap key that logs in."""
    if not available():
        pytest.skip("provisioning tests need openssh-server and openssh-client")
    key = keypair(tmp_path / "keys/bootstrap", "image bootstrap")
    host = DeviceHost(tmp_path / "device", key.with_suffix(".pub").read_text()).install().start()
    yield host, key
    host.stop()
