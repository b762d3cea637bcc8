"""Client-certificate login to SOX (SASL EXTERNAL, XEP-0178), with the key in a file or held in the TPM.

The server is a real Prosody whose <domain> takes accounts from client certificates only (mod_auth_ccert
from Debian's prosody-modules: the certificate is verified against a client CA, its id-on-xmppAddr names
the account). Readings go through the real publisher (outbox → SoxPublisher), and are read back from the
server by an anonymous reader.

TPM runs happen in a child process (`python -m tests.northbound.soxfire.test_mtls`) for the reason given in
tests/security/keystore/test_tls_key.py: enabling the tpm2 provider is process-wide and permanent. There the
whole agent (config file → build_agent) is run too, so that its own start-up turns the provider on.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from agent.northbound.soxfire import SoxfireSection, endpoint_factory
from agent.northbound.soxfire.session import Endpoint, LoginRefused, SoxSession
from agent.northbound.soxfire.wire import data_node, parse_data
from agent.security.keystore import KeystoreConfig
from agent.security.keystore.tls_key import create_tls_key
from tests.security.keystore.conftest import session_bus, swtpm  # noqa: F401  (fixtures, TPM variant)
from tests.security.keystore.swtpm import run_steps_in_child
from tests.security.keystore.test_tls_key import Ca, provisioned  # noqa: F401  (provisioned: a fixture)

from .conftest import Rig, truck_model, until
from .prosody import Pki, Prosody, cert_auth_available

pytestmark = pytest.mark.skipif(
    not cert_auth_available(), reason="prosody or prosody-modules (mod_auth_ccert) is not installed"
)

ROOT = Path(__file__).resolve().parents[3]
ID_ON_XMPPADDR = x509.ObjectIdentifier("1.3.6.1.5.5.7.8.5")  # RFC 6120 §13.7.1.4
JID = "sox@localhost"  # an admin of the pubsub component (prosody_factory): may create nodes
KEY_PASSWORD = "correct horse battery staple"


# -- certificates ------------------------------------------------------------------------------------------
def xmpp_address(jid: str) -> x509.OtherName:
    """id-on-xmppAddr: an otherName holding the JID as a DER UTF8String."""
    value = jid.encode()
    assert len(value) < 128  # short-form DER length
    return x509.OtherName(ID_ON_XMPPADDR, bytes([0x0C, len(value)]) + value)


def issue_for(ca: Ca, public_key: Any, jids: list[str], out: Path, *, days: float = 1) -> Path:
    """A client certificate for `jids`, as an XMPP operator's CA would issue it."""
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test-truck")]))
        .issuer_name(ca.name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([xmpp_address(j) for j in jids]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    out.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return out


def software_client(ca: Ca, directory: Path, stem: str, jids: list[str], password: str | None = None) -> Any:
    """(certificate, key file) with the key in a PEM file, encrypted when a password is given."""
    key = ec.generate_private_key(ec.SECP256R1())
    encryption = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    key_file = directory / f"{stem}.key"
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    )
    return issue_for(ca, key.public_key(), jids, directory / f"{stem}.pem"), key_file


@pytest.fixture
def cas(tmp_path: Path) -> tuple[Ca, Ca]:
    directory = tmp_path / "client-pki"
    directory.mkdir()
    return Ca(directory, "sox client CA"), Ca(directory, "some other CA")


@pytest.fixture
def cert_prosody(prosody_factory: Callable[..., Prosody], cas: tuple[Ca, Ca]) -> Prosody:
    return prosody_factory("cert-prosody", client_ca=cas[0].path, pubsub_storage="memory").start()


def sox_table(prosody: Prosody, pki: Pki, **fields: Any) -> dict[str, Any]:
    return {
        "jid": JID,
        "login": "certificate",
        "host": "127.0.0.1",
        "port": prosody.port,
        "ca_file": str(pki.ca),
        "connect_timeout": 5.0,
        "iq_timeout": 5.0,
        **fields,
    }


async def server_readings(prosody: Prosody, pki: Pki, device: str = "truck2") -> list[float]:
    """What the server holds on the device's _data node, read by an anonymous client (no certificate)."""
    reader = SoxSession(Endpoint(prosody.anon_domain, None, "127.0.0.1", prosody.port, ca_file=str(pki.ca)))
    await reader.open()
    try:
        items = await reader.items(prosody.pubsub, data_node(device), 10)
    finally:
        await reader.close()
    return [float(v.typed_value) for item in items for v in parse_data(item).values]


@dataclass(frozen=True)
class Outcome:
    text: str  # "published", or the failure's health line
    mechanism: str | None  # the SASL mechanism of the session that published


async def outcome(made: Rig) -> Outcome:
    """Queues one reading and waits until it is published or the publisher fails. Then stops the rig: a
    failing one would otherwise keep retrying (and logging) until the test ends."""
    made.model.update("truck2", "gps", "speed", 42.0)
    await until(lambda: made.recorder.readings_in >= 1)  # in the outbox: "nothing pending" now means sent
    await until(lambda: made.pending() == 0 or made.health().state == "failed", timeout=15)
    session = made.publisher.session
    mechanism = session.xmpp.plugin["feature_mechanisms"].mech if session is not None else None
    result = Outcome(
        "published" if made.pending() == 0 else str(made.health().detail).rsplit("; restart in ", 1)[0],
        mechanism.name if mechanism is not None and made.pending() == 0 else None,
    )
    await made.supervisor.stop(5)
    return result


@pytest.fixture
def attempt(rig: Callable[..., Any]) -> Callable[..., Any]:
    """A [soxfire] table (dict) → the outcome of publishing one reading with it (conftest's rig)."""

    async def run(table: dict[str, Any]) -> Outcome:
        return await outcome(await rig(SoxfireSection.model_validate(table)))

    return run


# -- configuration -----------------------------------------------------------------------------------------
BASE = {"jid": "truck42@sox.example.org", "login": "certificate", "cert_file": "/c.pem", "key_file": "/k.key"}


def test_certificate_login_needs_no_password_and_keeps_the_key_kind() -> None:
    s = SoxfireSection.model_validate({**BASE, "key": "tpm"})
    assert (s.login, s.password, s.key) == ("certificate", None, "tpm")
    endpoint = endpoint_factory(s)()
    assert endpoint.password is None and endpoint.login == "certificate"
    assert endpoint.client_cert is not None and endpoint.client_cert.key == "tpm"
    # Password login with a certificate shown in the handshake (servers requiring mutual TLS).
    both = SoxfireSection.model_validate({**BASE, "login": "password", "password": "env:P"})
    assert both.login == "password" and both.cert_file == "/c.pem"


@pytest.mark.parametrize(
    "change",
    [
        {"login": "kerberos"},
        {"login": "password"},  # and no password
        {"cert_file": None},  # a key without its certificate
        {"key_file": None},
        {"cert_file": None, "key_file": None},  # certificate login without a certificate
        {"cert_file": "relative/c.pem"},
        {"key_file": ""},
        {"cert_file": 7},
        {"key": "hsm"},
        {"key": "tpm", "key_password": "env:P"},  # the TPM key has no passphrase
        {"password": "env:P"},  # certificate login uses no password
        {"key_password": "hunter2"},  # inline secret
        {"tls": "plaintext", "ca_file": None},  # no TLS, no certificate
        {"cert_file": "/c.pem\x00/etc/shadow"},
        {"key_file": "/k.key\nforged log line"},
        {"cert_file": "/" + "a" * 5000},
        {"client_certificate": "/c.pem"},  # a typo: strict tables refuse unknown keys
    ],
)
def test_bad_certificate_settings_are_refused(change: dict[str, Any]) -> None:
    table = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    with pytest.raises(ValidationError) as error:
        SoxfireSection.model_validate(table)
    assert "hunter2" not in str(error.value) or error.value.errors()[0]["type"] == "secret_reference"


# -- login with a key in a file (fast, in this process) ----------------------------------------------------
async def test_certificate_login_publishes_end_to_end(
    attempt: Any, cert_prosody: Prosody, pki: Pki, cas: tuple[Ca, Ca], tmp_path: Path, caplog: Any
) -> None:
    cert, key = software_client(cas[0], tmp_path, "truck", [JID], password=KEY_PASSWORD)
    secret = tmp_path / "key-password"
    secret.write_text(KEY_PASSWORD + "\n")
    caplog.set_level(logging.DEBUG)
    result = await attempt(
        sox_table(cert_prosody, pki, cert_file=str(cert), key_file=str(key), key_password=f"file:{secret}")
    )
    assert result == Outcome("published", "EXTERNAL")
    assert await server_readings(cert_prosody, pki) == [42.0]
    assert "Authenticated as sox@localhost" in cert_prosody.log_tail(50)
    assert KEY_PASSWORD not in caplog.text


async def test_wrong_certificates_are_refused_with_a_clear_reason(
    attempt: Any, cert_prosody: Prosody, pki: Pki, cas: tuple[Ca, Ca], tmp_path: Path, caplog: Any
) -> None:
    trusted, untrusted = cas
    refused_by_server = (
        "LoginRefused: certificate login (SASL EXTERNAL) as sox@localhost refused by the server"
    )
    unusable = "ClientCertificateUnusable: client certificate unusable"
    good_cert, good_key = software_client(trusted, tmp_path, "good", [JID])
    cert, key = software_client(untrusted, tmp_path, "foreign", [JID])
    cases = {"untrusted CA": ({"cert_file": cert, "key_file": key}, f"{refused_by_server}: account-disabled")}
    cert, key = software_client(trusted, tmp_path, "other-host", ["sox@elsewhere.example"])
    cases["JID of another domain"] = (
        {"cert_file": cert, "key_file": key},
        f"{refused_by_server}: not-authorized",
    )
    cert, key = software_client(trusted, tmp_path, "locked", [JID], password=KEY_PASSWORD)
    cases["encrypted key, no password"] = (
        {"cert_file": cert, "key_file": key},
        f"{unusable} (PEM_LIB: the key is encrypted: set key_password)",
    )
    wrong = tmp_path / "wrong-password"
    wrong.write_text("not-the-passphrase")
    cases["wrong key password"] = (
        {"cert_file": cert, "key_file": key, "key_password": f"file:{wrong}"},
        f"{unusable} (PEM_LIB: wrong key_password)",
    )
    _, other_key = software_client(trusted, tmp_path, "other-key", [JID])
    cases["certificate of another key"] = (
        {"cert_file": good_cert, "key_file": other_key},
        f"{unusable} (KEY_VALUES_MISMATCH: the certificate is for another key)",
    )
    absent = tmp_path / "absent.pem"
    cases["missing file"] = (
        {"cert_file": absent, "key_file": good_key},
        f"{unusable}: No such file or directory: {absent}",
    )
    garbage, truncated = tmp_path / "garbage.pem", tmp_path / "truncated.pem"
    garbage.write_bytes(os.urandom(3000))
    truncated.write_bytes(good_cert.read_bytes()[:200])
    not_pem = f"{unusable} (PEM_LIB: not a PEM certificate and key)"
    cases["garbage certificate"] = ({"cert_file": garbage, "key_file": good_key}, not_pem)
    cases["truncated certificate"] = ({"cert_file": truncated, "key_file": good_key}, not_pem)
    cases["key file for the TPM without the provider"] = (
        {"cert_file": good_cert, "key_file": good_key, "key": "tpm"},
        f"{unusable}: {good_key} is not a TPM-wrapped key",
    )

    caplog.set_level(logging.DEBUG)
    for name, (fields, expected) in cases.items():
        table = sox_table(cert_prosody, pki, **{k: str(v) for k, v in fields.items()})
        result = await attempt(table)
        assert result.text.startswith(expected), (name, result)
        assert "\n" not in result.text and "Traceback" not in result.text
    assert KEY_PASSWORD not in caplog.text and "not-the-passphrase" not in caplog.text
    server_log = cert_prosody.log_tail(200)
    assert "Invalid client certificate chain" in server_log  # the server's own reason for the untrusted CA
    assert "Authenticated as" not in server_log


async def test_certificate_login_without_a_certificate_or_without_external_is_refused(
    attempt: Any, cert_prosody: Prosody, prosody: Prosody, pki: Pki, cas: tuple[Ca, Ca], tmp_path: Path
) -> None:
    # No certificate in the handshake (the configuration cannot say so; a bare Endpoint can): the server
    # says no, and the error says what was missing.
    bare = SoxSession(
        Endpoint(JID, None, "127.0.0.1", cert_prosody.port, ca_file=str(pki.ca), login="certificate")
    )
    with pytest.raises(
        LoginRefused, match=r"refused by the server: account-disabled \(no client certificate was shown"
    ):
        await bare.open()
    await bare.close()
    # A server that offers no EXTERNAL (password accounts only): said so, nothing else is tried.
    cert, key = software_client(cas[0], tmp_path, "truck", [JID])
    result = await attempt(sox_table(prosody, pki, cert_file=str(cert), key_file=str(key)))
    assert result.text == "LoginRefused: the server does not offer certificate login (SASL EXTERNAL)"


async def test_a_password_login_never_turns_into_a_certificate_login(
    attempt: Any, cert_prosody: Prosody, prosody: Prosody, pki: Pki, cas: tuple[Ca, Ca], tmp_path: Path
) -> None:
    cert, key = software_client(cas[0], tmp_path, "truck", [JID])
    password = tmp_path / "password"
    password.write_text("soxpass")
    both = {"login": "password", "password": f"file:{password}", "cert_file": str(cert), "key_file": str(key)}
    # Offered EXTERNAL only, with a certificate for this very JID: still no login without the password.
    result = await attempt(sox_table(cert_prosody, pki, **both))
    assert result.text.startswith("LoginRefused: login as sox@localhost refused by the server"), result
    # A password server: the certificate is shown in the handshake, the login is SCRAM.
    result = await attempt(sox_table(prosody, pki, **both))
    assert result.text == "published" and (result.mechanism or "").startswith("SCRAM-"), result


async def test_mutual_tls_required_by_the_server_with_a_password_login(
    attempt: Any, prosody_factory: Callable[..., Prosody], pki: Pki, cas: tuple[Ca, Ca], tmp_path: Path
) -> None:
    server = prosody_factory("mtls-prosody", require_client_cert=True, pubsub_storage="memory").start()
    cert, key = software_client(cas[0], tmp_path, "truck", [JID])
    password = tmp_path / "password"
    password.write_text("soxpass")
    table = sox_table(server, pki, login="password", password=f"file:{password}")
    result = await attempt(table)
    # TLS 1.3 sends the server's alert after the client's Finished: on a busy machine the client may read
    # the connection reset before the alert. Either way it is refused with a one-line reason, never a login.
    assert result.text in (
        "TlsRefused: the server refused the TLS session (TLSV13_ALERT_CERTIFICATE_REQUIRED): "
        "it requires a client certificate",
        "ServerUnreachable: the server closed the stream before login: Connection reset by peer",
    ), result
    result = await attempt({**table, "cert_file": str(cert), "key_file": str(key)})
    assert result.text == "published" and (result.mechanism or "").startswith("SCRAM-"), result
    assert "peer did not return a certificate" in server.log_tail(50)


async def test_a_certificate_naming_another_account_is_not_used_as_that_account(
    attempt: Any, cert_prosody: Prosody, pki: Pki, cas: tuple[Ca, Ca], tmp_path: Path
) -> None:
    cert, key = software_client(cas[0], tmp_path, "plain", ["plain@localhost"])
    result = await attempt(sox_table(cert_prosody, pki, cert_file=str(cert), key_file=str(key)))
    assert (
        result.text
        == "LoginRefused: the server logged the certificate in as plain@localhost, not sox@localhost"
    )


# -- the TPM-held key (child process) ----------------------------------------------------------------------
def run_child(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs `steps` in a fresh interpreter (see the module docstring); one result per step, then the logs."""
    return run_steps_in_child("tests.northbound.soxfire.test_mtls", steps)


async def _child(steps: list[dict[str, Any]]) -> None:  # pragma: no cover - runs in the child process
    import hashlib  # noqa: F401 - OpenSSL has read its config by now, as in the agent
    import io

    logs = io.StringIO()
    logging.basicConfig(stream=logs, level=logging.DEBUG, force=True)
    for number, step in enumerate(steps):
        result: dict[str, Any] = {"step": number}
        if "agent" in step:
            result.update(await _whole_agent(Path(step["directory"]), step["agent"]))
            print(json.dumps(result), flush=True)
            continue
        directory = Path(step["directory"]) / f"step{number}"
        directory.mkdir()
        made = Rig(directory, truck_model(), SoxfireSection.model_validate(step["soxfire"]))
        await made.supervisor.start()
        try:
            seen = await outcome(made)
            result.update(outcome=seen.text, mechanism=seen.mechanism)
        finally:
            await made.close()
        print(json.dumps(result), flush=True)
    print(json.dumps({"logs": logs.getvalue()}), flush=True)


async def _whole_agent(directory: Path, body: str) -> dict[str, Any]:  # pragma: no cover - child process
    """The agent as `msec-agent run` builds it (app.py turns the tpm2 provider on), until it has published."""
    from agent.app import build_agent, extensions
    from agent.core.config import load_config
    from tests.conftest import AgentThread, write_config

    config = load_config(write_config(directory, body), extensions())
    runner = await asyncio.to_thread(lambda: AgentThread(build_agent(config)).start())
    supervisor = runner.agent.runtime.supervisor
    publisher: Any = supervisor.records["soxfire"].component
    try:
        await until(lambda: publisher.published >= 3 or supervisor.health_of("soxfire").state == "failed", 20)
        session = publisher.session
        mechanism = session.xmpp.plugin["feature_mechanisms"].mech.name if session else None
        return {"published": publisher.published, "mechanism": mechanism, "health": str(
            supervisor.health_of("soxfire").detail)}  # fmt: skip
    finally:
        await asyncio.to_thread(runner.stop)


def test_the_publisher_logs_in_with_the_tpm_held_key(
    swtpm: Any,  # noqa: F811 (the fixture imported above)
    provisioned: tuple[KeystoreConfig, Path],  # noqa: F811
    cert_prosody: Prosody,
    pki: Pki,
    cas: tuple[Ca, Ca],
    tmp_path: Path,
) -> None:
    config, state = provisioned
    trusted, untrusted = cas
    files = create_tls_key(config, state, "test-truck")  # `msec-agent keys tls-key`: CSR signed in the TPM
    csr = x509.load_pem_x509_csr(files.csr_file.read_bytes())
    assert csr.is_signature_valid
    good = issue_for(trusted, csr.public_key(), [JID], tmp_path / "client.pem")
    foreign = issue_for(untrusted, csr.public_key(), [JID], tmp_path / "foreign.pem")

    def step(cert: Path, **extra: Any) -> dict[str, Any]:
        table = sox_table(cert_prosody, pki, cert_file=str(cert), key_file=str(files.key_file), key="tpm")
        return {"soxfire": table, "directory": str(tmp_path), **extra}

    agent = f"""
[keystore]
backend = "tpm"
tcti = "{swtpm.tcti}"

[[drivers]]
type = "simulated"
id = "sim"
rate_hz = 20.0

[soxfire]
jid = "{JID}"
login = "certificate"
cert_file = "{good}"
key_file = "{files.key_file}"
key = "tpm"
host = "127.0.0.1"
port = {cert_prosody.port}
ca_file = "{pki.ca}"
"""
    assert files.key_file.parent.parent.parent == tmp_path / "state"  # the agent's state_dir (write_config)
    not_enabled, whole, published, refused, logs = run_child(
        [step(good), {"agent": agent, "directory": str(tmp_path)}, step(good), step(foreign)]
    )
    assert not_enabled["outcome"].startswith(
        "ClientCertificateUnusable: client certificate unusable: the tpm2 OpenSSL provider is not active"
    ), not_enabled
    # The agent enabled the provider itself (app.py) and published over a certificate login.
    assert whole["published"] >= 3 and whole["mechanism"] == "EXTERNAL", whole
    assert asyncio.run(server_readings(cert_prosody, pki, "truck"))  # the simulated truck's readings
    assert (published["outcome"], published["mechanism"]) == ("published", "EXTERNAL"), published
    assert asyncio.run(server_readings(cert_prosody, pki)) == [42.0]
    assert refused["outcome"].startswith(
        "LoginRefused: certificate login (SASL EXTERNAL) as sox@localhost refused by the server: "
        "account-disabled"
    ), refused
    server_log = cert_prosody.log_tail(200)
    assert server_log.count("Authenticated as sox@localhost") == 2, server_log
    assert "Invalid client certificate chain" in server_log
    # The key file is the TPM-wrapped blob; no private key material reached the child's logs.
    assert files.key_file.read_bytes().startswith(b"-----BEGIN TSS2 PRIVATE KEY")
    assert "component soxfire failed (LoginRefused" in logs["logs"]  # the capture works
    assert "PRIVATE KEY" not in logs["logs"]


if __name__ == "__main__":  # the child process of run_child()
    asyncio.run(_child(json.loads(sys.argv[1])))
