"""Throw-away local servers for `msec-agent run --demo`: a Prosody (SOX) and a Mosquitto (MQTT) on loopback.

Each starts only when its binary is installed. Everything lives in `<state_dir>/services/` and is removed on
`stop()`: a CA made for this run and the server certificate it issued, the servers' configurations, data and
logs, the device's passwords (0600 files, referenced as `file:` secrets), and `services.json`, which tells
`msec-agent watch --demo` where to connect.

* Prosody (shared/reference/sox.md §2): STARTTLS required, VirtualHost `localhost` with the device's account
  (created offline with prosodyctl), VirtualHost `anon.localhost` (SASL ANONYMOUS, for watchers), the
  `pubsub.localhost` component with the device's JID as admin (Prosody lets only admins create nodes).
* Mosquitto: one TLS listener on 127.0.0.1; the device logs in with its password and may write
  `msec/<device>/#`; anonymous clients may only read `msec/#`.

The servers run in their own session (Ctrl-C reaches only the agent, which stops them after its publishers
said goodbye) and get SIGTERM if the agent dies without cleaning up (Linux parent-death signal).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import getpass
import ipaddress
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DIRECTORY = "services"  # under the agent's state directory
SERVICES_FILE = "services.json"
DOMAIN = "localhost"
ANON_DOMAIN = f"anon.{DOMAIN}"
PUBSUB = f"pubsub.{DOMAIN}"
LOOPBACK = "127.0.0.1"
START_TIMEOUT = 10.0
# Where Debian puts the servers; a non-root PATH often lacks the sbin directories (mosquitto is there).
_EXTRA_PATH = ("/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin")

Finder = Callable[[str], str | None]


def find_binary(name: str) -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", ""), *_EXTRA_PATH])
    return shutil.which(name, path=path)


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def services_file(state_dir: Path) -> Path:
    return state_dir / DIRECTORY / SERVICES_FILE


# --- certificates -----------------------------------------------------------------------------------------


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key): a CA made now, and a certificate it issued for the
    servers' names (localhost, anon.localhost, pubsub.localhost, 127.0.0.1). P-256, so it takes
    milliseconds."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("M-Sec demo CA (throw-away)")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName(h) for h in (DOMAIN, ANON_DOMAIN, PUBSUB)]
    names.append(x509.IPAddress(ipaddress.ip_address(LOOPBACK)))
    server = (
        x509.CertificateBuilder()
        .subject_name(_name(DOMAIN))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    _write_private(
        paths[2],
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    return paths


# --- processes --------------------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the agent dies, even by SIGKILL (Linux prctl PDEATHSIG)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Server:
    name: str  # "prosody" | "mosquitto"
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)


def _spawn(name: str, argv: list[str], port: int, log: Path) -> Server:
    with open(log, "ab") as output:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in the terminal stops the agent, which then stops us
            preexec_fn=_die_with_parent,
        )
    server = Server(name, process, port, log)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), timeout=0.2):
            return server
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"{name} did not start: {_tail(log)}")
        time.sleep(0.02)


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


# --- Prosody ----------------------------------------------------------------------------------------------


def _prosody_config(directory: Path, port: int, device: str, cert: Path, key: Path) -> str:
    return f"""-- throw-away demo server, written by agent/demo/services.py
run_as_root = true
pidfile = "{directory}/prosody.pid"
data_path = "{directory}/data"
interfaces = {{ "{LOOPBACK}" }}
c2s_ports = {{ {port} }}
s2s_ports = {{}}
http_ports = {{}}
https_ports = {{}}
admins = {{ "{device}@{DOMAIN}" }}
modules_enabled = {{ "roster"; "saslauth"; "tls"; "disco"; "ping"; "posix" }}
modules_disabled = {{ "offline"; "s2s" }}
c2s_require_encryption = true
c2s_stanza_size_limit = 1024 * 1024
default_storage = "internal"
storage = {{ pubsub_nodes = "memory"; pubsub_data = "memory" }}
authentication = "internal_hashed"
ssl = {{ key = "{key}"; certificate = "{cert}" }}
log = {{ {{ levels = {{ min = "warn" }}, to = "file", filename = "{directory}/prosody.log" }} }}

VirtualHost "{DOMAIN}"
VirtualHost "{ANON_DOMAIN}"
  authentication = "anonymous"
Component "{PUBSUB}" "pubsub"
  pubsub_max_items = 1000
  expose_publisher = true
"""


def start_prosody(
    directory: Path, device: str, password: str, cert: Path, key: Path, find: Finder = find_binary
) -> Server:
    prosody, prosodyctl = find("prosody"), find("prosodyctl")
    if prosody is None or prosodyctl is None:
        raise FileNotFoundError("prosody")
    directory.mkdir(mode=0o700)
    (directory / "data").mkdir(mode=0o700)
    port = free_port()
    config = directory / "prosody.cfg.lua"
    config.write_text(_prosody_config(directory, port, device, cert, key))
    subprocess.run(
        [prosodyctl, "--config", str(config), "register", device, DOMAIN, password],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return _spawn("prosody", [prosody, "--config", str(config), "-F"], port, directory / "prosody.log")


# --- Mosquitto --------------------------------------------------------------------------------------------


def start_mosquitto(
    directory: Path, device: str, password: str, cert: Path, key: Path, ca: Path, find: Finder = find_binary
) -> Server:
    mosquitto, mosquitto_passwd = find("mosquitto"), find("mosquitto_passwd")
    if mosquitto is None or mosquitto_passwd is None:
        raise FileNotFoundError("mosquitto")
    directory.mkdir(mode=0o700)
    port = free_port()
    passwords, acl = directory / "passwords", directory / "acl"
    subprocess.run(
        [mosquitto_passwd, "-c", "-b", str(passwords), device, password],
        check=True,
        capture_output=True,
        timeout=30,
    )
    # Lines before the first `user` are for anonymous clients: watchers read, only the device writes.
    acl.write_text(f"topic read msec/#\n\nuser {device}\ntopic readwrite msec/{device}/#\n")
    config = directory / "mosquitto.conf"
    config.write_text(
        "# throw-away demo broker, written by agent/demo/services.py\n"
        # As root, mosquitto would switch to user "mosquitto", who cannot read the files here.
        f"user {getpass.getuser()}\n"
        "persistence false\n"
        f"log_dest file {directory}/mosquitto.log\nlog_type error\nlog_type warning\n"
        f"listener {port} {LOOPBACK}\n"
        f"cafile {ca}\ncertfile {cert}\nkeyfile {key}\n"
        f"allow_anonymous true\npassword_file {passwords}\nacl_file {acl}\n"
    )
    return _spawn("mosquitto", [mosquitto, "-c", str(config)], port, directory / "mosquitto.stdout")


# --- both -------------------------------------------------------------------------------------------------


@dataclass
class DemoServices:
    """What was started for the demo. `overrides`: the [soxfire] and [mqtt] tables to merge into the
    demo's configuration; `notes`: what the operator should know (what runs, what is missing and why)."""

    state_dir: Path
    device_id: str
    overrides: dict[str, Any] = field(default_factory=dict)
    servers: list[Server] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    prepared: bool = False  # the services directory was made by us (and is removed by stop)

    @property
    def directory(self) -> Path:
        return self.state_dir / DIRECTORY

    def stop(self) -> None:
        """Stops the servers and removes their files. Idempotent, never raises."""
        servers, self.servers = self.servers, []
        for server in servers:
            with contextlib.suppress(Exception):
                server.stop()
        if self.prepared:
            self.prepared = False
            shutil.rmtree(self.directory, ignore_errors=True)

    def banner(self) -> str:
        """Lines for the terminal: where data goes and how to watch it, or why it stays on the device."""
        lines = ["", "  demo services (throw-away, on loopback):", *(f"    {n}" for n in self.notes)]
        if self.servers:
            lines.append(
                f"  watch what leaves the device:  {_command()} watch --demo --state-dir {self.state_dir}"
            )
        else:
            lines.append(
                f"  nothing leaves the device: every reading stays in the outbox ({self.state_dir}/outbox.db)"
            )
        return "\n".join([*lines, ""])

    def __enter__(self) -> DemoServices:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_services(
    state_dir: Path,
    device_id: str,
    *,
    prosody: bool = True,
    mosquitto: bool = True,
    find: Finder = find_binary,
) -> DemoServices:
    """Starts what is installed (and asked for). A server that is missing or fails to start is noted, not
    raised: the demo then runs without that publisher and keeps its readings in the outbox."""
    state_dir = state_dir.resolve()
    services = DemoServices(state_dir, device_id)
    directory = services.directory
    try:
        shutil.rmtree(directory, ignore_errors=True)  # what a killed earlier run left behind
        directory.mkdir(mode=0o700, parents=True)
        ca, cert, key = make_certificates(directory)
    except OSError as error:
        services.notes.append(f"none started: cannot prepare {directory}: {error.strerror or error}")
        return services
    services.prepared = True
    atexit.register(services.stop)
    description: dict[str, Any] = {"device": device_id, "ca_file": str(ca)}
    if prosody:
        try:
            password = _password(directory / "sox.pass")
            server = start_prosody(directory / "prosody", device_id, password, cert, key, find)
        except FileNotFoundError:
            services.notes.append(
                "SOX   no Prosody: not installed (apt-get install prosody lua-unbound lua-event)"
            )
        except (OSError, RuntimeError, subprocess.SubprocessError) as error:
            services.notes.append(f"SOX   no Prosody: {_why(error)}")
        else:
            services.servers.append(server)
            services.overrides["soxfire"] = {
                "jid": f"{device_id}@{DOMAIN}",
                "password": f"file:{directory / 'sox.pass'}",
                "host": LOOPBACK,
                "port": server.port,
                "ca_file": str(ca),
                "connect_timeout": 5.0,
                "iq_timeout": 10.0,
            }
            description["sox"] = {
                "host": LOOPBACK,
                "port": server.port,
                "domain": DOMAIN,
                "anonymous_domain": ANON_DOMAIN,
                "pubsub": PUBSUB,
                "jid": f"{device_id}@{DOMAIN}",
            }
            services.notes.append(
                f"SOX   Prosody on {LOOPBACK}:{server.port} (STARTTLS): {device_id}@{DOMAIN} publishes on "
                f"{PUBSUB}; anyone reads through {ANON_DOMAIN}"
            )
    if mosquitto:
        try:
            password = _password(directory / "mqtt.pass")
            server = start_mosquitto(directory / "mosquitto", device_id, password, cert, key, ca, find)
        except FileNotFoundError:
            services.notes.append("MQTT  no Mosquitto: not installed (apt-get install mosquitto)")
        except (OSError, RuntimeError, subprocess.SubprocessError) as error:
            services.notes.append(f"MQTT  no Mosquitto: {_why(error)}")
        else:
            services.servers.append(server)
            services.overrides["mqtt"] = {
                "host": LOOPBACK,
                "port": server.port,
                "username": device_id,
                "password": f"file:{directory / 'mqtt.pass'}",
                "tls": {"ca_file": str(ca)},
                "connect_timeout": 5.0,
            }
            description["mqtt"] = {"host": LOOPBACK, "port": server.port, "topic": f"msec/{device_id}/#"}
            services.notes.append(
                f"MQTT  Mosquitto on {LOOPBACK}:{server.port} (TLS): {device_id} publishes "
                f"msec/{device_id}/#; anyone reads"
            )
    if not services.servers:
        services.notes.append("readings are kept in the outbox; nothing is published")
    with contextlib.suppress(OSError):
        services_file(state_dir).write_text(json.dumps(description, indent=2) + "\n")
    return services


def _command() -> str:
    """How the operator ran us: the venv's script path (./build.sh run), else the bare name."""
    argv0 = sys.argv[0] if sys.argv else ""
    return argv0 if Path(argv0).name == "msec-agent" else "msec-agent"


def _password(path: Path) -> str:
    password = secrets.token_urlsafe(18)
    _write_private(path, password.encode() + b"\n")
    return password


def _why(error: BaseException) -> str:
    if isinstance(error, subprocess.CalledProcessError):
        output = (error.stderr or error.stdout or b"").decode(errors="replace").strip().splitlines()
        return f"{Path(str(error.cmd[0])).name} failed: {output[-1] if output else error.returncode}"
    return str(error) or type(error).__name__


def start_demo_services(profile: Path, overrides: Mapping[str, Any]) -> DemoServices:
    """For `msec-agent run --demo`: the state directory and device id of the demo profile (as overridden
    on the command line), then `start_services`."""
    with open(profile, "rb") as handle:
        config = tomllib.load(handle)
    agent = {**config.get("agent", {}), **overrides.get("agent", {})}
    state_dir = Path(agent.get("state_dir", "/var/lib/msec-agent"))
    if not state_dir.is_absolute():
        state_dir = (profile.parent / state_dir).resolve()
    return start_services(state_dir, str(agent.get("device_id", "demo")))


def read_services(state_dir: Path) -> dict[str, Any]:
    """What a running demo started (services.json); FileNotFoundError when it started nothing."""
    return json.loads(services_file(state_dir).read_text())
