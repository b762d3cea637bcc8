"""A real Prosody on loopback for the SOX tests: temp config and data, a test CA, started and stopped here.

Layout (shared/reference/sox.md §2): VirtualHost <domain> with password accounts (internal_hashed, created
offline with prosodyctl), VirtualHost anon.<domain> with SASL ANONYMOUS, Component pubsub.<domain>.
STARTTLS is mandatory; the server certificate is issued by a CA generated for the session.

With `client_ca`, <domain> logs clients in by their TLS client certificate instead (SASL EXTERNAL, XEP-0178):
mod_auth_ccert from Debian's prosody-modules, the certificate verified against `client_ca` and its
id-on-xmppAddr name giving the account; no passwords there.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PROSODY = shutil.which("prosody") or "/usr/bin/prosody"
PROSODYCTL = shutil.which("prosodyctl") or "/usr/bin/prosodyctl"
# Debian's prosody-modules installs its community modules next to Prosody's own.
AUTH_CCERT = Path("/usr/lib/prosody/modules/mod_auth_ccert/mod_auth_ccert.lua")


def available() -> bool:
    return Path(PROSODY).exists() and Path(PROSODYCTL).exists() and shutil.which("openssl") is not None


def cert_auth_available() -> bool:
    return available() and AUTH_CCERT.exists()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@dataclass
class Pki:
    """A test CA and a server certificate it issued for every host of the given domains."""

    directory: Path

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"

    def issue(self, name: str, hosts: list[str]) -> tuple[Path, Path]:
        """(certificate, key) for `hosts`, signed by the CA (created on first use)."""
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        if not self.ca.exists():
            _openssl(
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "30",
                "-subj",
                "/CN=M-Sec test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
                cwd=d,
            )
        san = ",".join(f"DNS:{h}" for h in hosts)
        _openssl(
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            f"/CN={hosts[0]}",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            cwd=d,
        )
        (d / f"{name}.ext").write_text(f"subjectAltName={san}\nbasicConstraints=CA:FALSE\n")
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            f"{name}.ext",
            "-out",
            f"{name}.crt",
            cwd=d,
        )
        return d / f"{name}.crt", d / f"{name}.key"


@dataclass
class Prosody:
    directory: Path
    cert: Path
    key: Path
    domain: str = "localhost"
    address: str = "127.0.0.1"
    admins: tuple[str, ...] = ("sox",)  # localparts: only admins may create nodes on Prosody's pubsub
    users: dict[str, str] = field(default_factory=lambda: {"sox": "soxpass", "plain": "plainpass"})
    pubsub_storage: str = "internal"  # "memory": faster, forgotten on restart
    expose_publisher: bool = True  # item publisher attribute, what actuation authorizes on
    s2s: bool = False
    registration: bool = False  # in-band registration (XEP-0077), what provisioning uses
    admin_commands: bool = False  # XEP-0133 admin commands over ad-hoc (delete a user, set a password)
    hosts_file: Path | None = None
    client_ca: Path | None = None  # set: <domain> logs in by client certificate (SASL EXTERNAL) only
    # <domain> ends the TLS handshake of a client that shows no certificate. Only its presence: Prosody 0.12
    # always adds lsec_continue, so an untrusted one passes TLS (and is refused by mod_auth_ccert).
    require_client_cert: bool = False
    # XEP-0363 HTTP File Upload: Component upload.<domain> (mod_http_file_share) on HTTPS https_port, its
    # URLs https://<domain>:<https_port>/… (the domain is "localhost" by default: it resolves).
    file_share: bool = False
    file_share_limit: int = 1024 * 1024
    https_port: int = 0
    port: int = 0
    s2s_port: int = 5269
    process: subprocess.Popen[bytes] | None = None

    @property
    def config_path(self) -> Path:
        return self.directory / "prosody.cfg.lua"

    @property
    def pubsub(self) -> str:
        return f"pubsub.{self.domain}"

    @property
    def anon_domain(self) -> str:
        return f"anon.{self.domain}"

    def write_config(self) -> None:
        self.port = self.port or free_port(self.address)
        (self.directory / "data").mkdir(parents=True, exist_ok=True)
        admins = ", ".join(f'"{a}@{self.domain}"' for a in self.admins)
        modules = '"roster"; "saslauth"; "tls"; "disco"; "ping"; "posix"'
        if self.s2s:
            modules += '; "dialback"'
        if self.registration:
            modules += '; "register"'
        if self.admin_commands:
            modules += '; "adhoc"; "admin_adhoc"'
        self.config_path.write_text(f"""
run_as_root = true
pidfile = "{self.directory}/prosody.pid"
data_path = "{self.directory}/data"
interfaces = {{ "{self.address}" }}
c2s_ports = {{ {self.port} }}
s2s_ports = {{ {self.s2s_port if self.s2s else ""} }}
s2s_interfaces = {{ "{self.address}" }}
http_ports = {{}}
{self._https_options()}
admins = {{ {admins} }}
modules_enabled = {{ {modules} }}
modules_disabled = {{ "offline"; {"" if self.s2s else '"s2s";'} }}
c2s_require_encryption = true
s2s_secure_auth = false
c2s_stanza_size_limit = 1024 * 1024
default_storage = "internal"
storage = {{ pubsub_nodes = "{self.pubsub_storage}"; pubsub_data = "{self.pubsub_storage}" }}
authentication = "internal_hashed"
allow_registration = {str(self.registration).lower()}
min_seconds_between_registrations = 0
ssl = {{ key = "{self.key}"; certificate = "{self.cert}" }}
{f'unbound = {{ hoststxt = "{self.hosts_file}" }}' if self.hosts_file else ""}
log = {{ {{ levels = {{ min = "info" }}, to = "file", filename = "{self.directory}/prosody.log" }} }}

VirtualHost "{self.domain}"
{self._cert_auth_options()}
VirtualHost "{self.anon_domain}"
  authentication = "anonymous"
  allow_anonymous_s2s = true
Component "{self.pubsub}" "pubsub"
  pubsub_max_items = 100000
  expose_publisher = {str(self.expose_publisher).lower()}
{self._file_share_component()}
""")

    @property
    def upload(self) -> str:
        return f"upload.{self.domain}"

    def _https_options(self) -> str:
        if not self.file_share:
            return "https_ports = {}"
        self.https_port = self.https_port or free_port(self.address)
        return (
            f'https_ports = {{ {self.https_port} }}\nhttps_interfaces = {{ "{self.address}" }}\n'
            f'https_ssl = {{ key = "{self.key}"; certificate = "{self.cert}" }}\n'
            f'http_external_url = "https://{self.domain}:{self.https_port}/"'
        )

    def _file_share_component(self) -> str:
        if not self.file_share:
            return ""
        return (
            f'Component "{self.upload}" "http_file_share"\n'
            f"  http_file_share_size_limit = {self.file_share_limit}\n"
            f'  http_file_share_access = {{ "{self.domain}" }}\n'
            # Prosody routes HTTP by Host: serve the upload paths on <domain>, the name the URLs carry.
            f'  http_host = "{self.domain}"'
        )

    def _cert_auth_options(self) -> str:
        if self.client_ca is None and not self.require_client_cert:
            return ""
        # Ask every client for a certificate (without require_client_cert, a client without one still gets
        # a TLS session, and then no login); lsec_continue in Prosody's defaults lets an untrusted one
        # through the handshake too, so that mod_auth_ccert can refuse it in SASL, where the client is told.
        verify = '"peer"; "client_once"' + ('; "fail_if_no_peer_cert"' if self.require_client_cert else "")
        cafile = f'; cafile = "{self.client_ca}"' if self.client_ca else ""
        options = f"  c2s_ssl = {{ verify = {{ {verify} }}{cafile} }}"
        if self.client_ca is not None:
            options += '\n  authentication = "ccert"\n  certificate_match = "xmppaddr"'
        return options

    def register_users(self) -> None:
        if self.client_ca is not None:
            return  # accounts are whatever the CA certifies: nothing to register
        for user, password in self.users.items():
            subprocess.run(
                [PROSODYCTL, "--config", str(self.config_path), "register", user, self.domain, password],
                check=True,
                capture_output=True,
                timeout=30,
            )

    def start(self) -> Prosody:
        if not self.config_path.exists():
            self.write_config()
            self.register_users()
        self.process = subprocess.Popen(
            [PROSODY, "--config", str(self.config_path), "-F"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.address, self.port), timeout=0.2),
            ):
                return self
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"prosody did not start: {self.log_tail()}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        path = self.directory / "prosody.log"
        return "\n".join(path.read_text().splitlines()[-lines:]) if path.exists() else "(no log)"
