"""A real Mosquitto on loopback for tests and benchmarks, and a real paho subscriber to check deliveries.

Mosquitto runs as our child process with a generated config: a plain listener, one that needs a password
(made with mosquitto_passwd), a TLS listener with a test CA (made with `cryptography`), and a TLS listener
that requires a client certificate. Persistence is on, so a consumer's session (and the messages queued
for it) survives a restart, as on a real broker.
"""

from __future__ import annotations

import datetime
import getpass
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as paho
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.northbound.mqtt import read_message

USERNAME, PASSWORD = "truck", "s3cret-pass"


def mosquitto_available() -> bool:
    return shutil.which("mosquitto") is not None and shutil.which("mosquitto_passwd") is not None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- certificates ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here: trusting it must fail verification


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_name, issuer_key = (_name(issuer[0]), issuer[1]) if issuer else (_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
    else:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_pki(directory: Path) -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    ca_key = ec.generate_private_key(ec.SECP256R1())
    other_key = ec.generate_private_key(ec.SECP256R1())
    for name, cert in (
        ("ca", _certificate("msec test CA", ca_key, None, ca=True)),
        ("other_ca", _certificate("some other CA", other_key, None, ca=True)),
    ):
        paths[name] = directory / f"{name}.pem"
        paths[name].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    for role, common in (("server", "localhost"), ("client", "test-truck")):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(common, key, ("msec test CA", ca_key), ca=False)
        paths[f"{role}_cert"] = directory / f"{role}.pem"
        paths[f"{role}_key"] = directory / f"{role}.key"
        paths[f"{role}_cert"].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, paths[f"{role}_key"])
    return Pki(**paths)


# -- the broker ----------------------------------------------------------------------------------------


@dataclass
class Mosquitto:
    """One broker process. Ports stay the same across stop()/start(), as a restarted server's would."""

    directory: Path
    pki: Pki
    message_size_limit: int = 0
    port: int = field(default_factory=free_port)
    auth_port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    mtls_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.password_file = self.directory / "passwords"
        self.password_file.touch(mode=0o600)
        subprocess.run(
            ["mosquitto_passwd", "-b", str(self.password_file), USERNAME, PASSWORD],
            check=True,
            capture_output=True,
        )
        self.config = self.directory / "mosquitto.conf"
        self.log = self.directory / "mosquitto.log"
        tls = f"cafile {self.pki.ca}\ncertfile {self.pki.server_cert}\nkeyfile {self.pki.server_key}\n"
        self.config.write_text(
            f"per_listener_settings true\n"
            # As root, mosquitto would switch to user "mosquitto", who cannot read our temporary files.
            f"user {getpass.getuser()}\n"
            f"persistence true\npersistence_location {self.directory}/\n"
            f"log_dest file {self.log}\nlog_type error\nlog_type warning\nlog_type notice\n"
            # No broker-side limits on queues/in-flight: a slow test consumer must not lose messages.
            f"max_inflight_messages 0\nmax_queued_messages 0\n"
            f"message_size_limit {self.message_size_limit}\n"
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"listener {self.auth_port} 127.0.0.1\nallow_anonymous false\n"
            f"password_file {self.password_file}\n"
            f"listener {self.tls_port} 127.0.0.1\nallow_anonymous true\n{tls}"
            f"listener {self.mtls_port} 127.0.0.1\nallow_anonymous true\nrequire_certificate true\n"
            f"use_identity_as_username true\n{tls}"
        )

    def start(self, timeout: float = 10.0) -> Mosquitto:
        assert self.process is None or self.process.poll() is not None, "already running"
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(
                ["mosquitto", "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        for port in (self.port, self.auth_port, self.tls_port, self.mtls_port):
            while not _listening(port):
                if self.process.poll() is not None:
                    raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError("mosquitto did not open its ports in time")
                time.sleep(0.02)
        return self

    def stop(self) -> None:
        """A clean shutdown (SIGTERM): mosquitto saves its persistence database."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def kill(self) -> None:
        """SIGKILL: no goodbye, no save, connections cut mid-flight."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def save(self) -> None:
        """SIGUSR1: write the persistence database now (so that sessions survive a later kill -9)."""
        assert self.process is not None
        db = self.directory / "mosquitto.db"
        before = db.stat().st_mtime_ns if db.exists() else 0
        os.kill(self.process.pid, signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while not (db.exists() and db.stat().st_mtime_ns != before):
            assert time.monotonic() < deadline, "mosquitto did not save its database"
            time.sleep(0.02)

    def restart(self) -> None:
        self.stop()
        self.start()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


# -- a real subscriber --------------------------------------------------------------------------------


class Consumer:
    """A paho subscriber with a persistent session (survives broker restarts), QoS 1, auto-reconnect."""

    def __init__(
        self, port: int, topic: str = "msec/#", *, protocol: str = "5", client_id: str = "consumer"
    ) -> None:
        self.mqtt5 = protocol == "5"
        self.topic = topic
        self.lock = threading.Lock()
        self.messages: list[paho.MQTTMessage] = []
        self.subscribed = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5 if self.mqtt5 else paho.MQTTv311,
            clean_session=None if self.mqtt5 else False,
        )
        self.client.reconnect_delay_set(0.05, 0.2)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *args: self.subscribed.set()
        if self.mqtt5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = 3600  # the session (and its queue) outlives a disconnection
            self.client.connect("127.0.0.1", port, 10, clean_start=False, properties=properties)
        else:
            self.client.connect("127.0.0.1", port, 10)
        self.client.loop_start()
        assert self.subscribed.wait(10), "consumer did not subscribe"

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        client.subscribe(self.topic, qos=1)

    def _on_message(self, client, userdata, message) -> None:
        with self.lock:
            self.messages.append(message)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def received(self, retained: bool = False) -> list[paho.MQTTMessage]:
        with self.lock:
            return [m for m in self.messages if m.retain == retained or retained is None]

    def data(self) -> list[paho.MQTTMessage]:
        """Every message but the status ones, duplicates included, in arrival order."""
        return [m for m in self.received(retained=False) if not m.topic.endswith("/status")]

    def records(self) -> list[tuple[str, object]]:
        """(topic, Received) of every data message, duplicates included, in arrival order."""
        out = []
        for message in self.data():
            props = getattr(message, "properties", None)
            user = getattr(props, "UserProperty", None) if props is not None else None
            out.append(
                (message.topic, read_message(message.payload, user, getattr(props, "ContentType", "")))
            )
        return out

    def wait_for_uids(self, uids: set[str], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not uids <= {r.uid for _, r in self.records()}:
            if time.monotonic() > deadline:
                missing = uids - {r.uid for _, r in self.records()}
                raise AssertionError(f"{len(missing)} record(s) never arrived, e.g. {sorted(missing)[:5]}")
            time.sleep(0.05)


def check_delivery(records: list[tuple[str, object]], expected_uids: set[str]) -> dict[str, int]:
    """Every expected uid arrived; after dropping repeats of a uid, each stream's seqs rise without gaps.

    Returns how many times each uid arrived (a re-send after a lost PUBACK shows as 2)."""
    counts: dict[str, int] = defaultdict(int)
    last_seq: dict[str, int] = {}
    for _, record in records:
        counts[record.uid] += 1
        if counts[record.uid] > 1:
            continue  # a duplicate, dropped by uid as a consumer would
        previous = last_seq.get(record.stream)
        assert previous is None or record.seq == previous + 1, (
            f"{record.stream}: seq {record.seq} after {previous} (out of order or a gap)"
        )
        last_seq[record.stream] = record.seq
    missing = expected_uids - counts.keys()
    assert not missing, f"{len(missing)} record(s) lost, e.g. {sorted(missing)[:5]}"
    return dict(counts)
