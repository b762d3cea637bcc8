"""Mutual TLS with a TPM-held key: real swtpm + tpm2-abrmd, the tpm2-openssl provider, a real Mosquitto that
requires a client certificate, and the agent's own MQTT publisher.

The agent side runs in a child process (`python -m tests.security.keystore.test_tls_key`), not in pytest's:
enabling the provider is process-wide and permanent (it binds one TCTI for the life of the process and makes
every `ssl` context prefer the tpm2 provider). In the pytest process it would outlive this test's swtpm and
break the other TLS tests. Inside the child, it is enabled the way the agent does it: after `ssl`, `hashlib`
and the agent are imported, with no OPENSSL_CONF in the environment.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from agent.northbound.mqtt import MqttSection
from agent.security.keystore import KeystoreConfig, open_keystore
from agent.security.keystore.tls_key import TSS2_PEM_LABEL, create_tls_key, is_tss2_blob
from tests.northbound.mqtt.broker import Consumer, Mosquitto, Pki, mosquitto_available

from .swtpm import Swtpm, run_steps_in_child

ROOT = Path(__file__).resolve().parents[3]
DEVICE = "test-truck"


# -- a test CA that signs the device's CSR ---------------------------------------------------------------
def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _issue(
    subject: x509.Name, public: Any, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey], *, ca: bool = False
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0])
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return builder.sign(issuer[1], hashes.SHA256())


class Ca:
    def __init__(self, directory: Path, name: str) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name(name)
        self.cert = _issue(self.name, self.key.public_key(), (self.name, self.key), ca=True)
        self.path = directory / f"{name.replace(' ', '-')}.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def sign_csr(self, csr_file: Path, out: Path) -> Path:
        csr = x509.load_pem_x509_csr(csr_file.read_bytes())
        assert csr.is_signature_valid  # signed in the TPM by the key it certifies
        out.write_bytes(_issue(csr.subject, csr.public_key(), (self.name, self.key)).public_bytes(
            serialization.Encoding.PEM
        ))  # fmt: skip
        return out

    def issue_software(self, directory: Path, stem: str) -> tuple[Path, Path]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _issue(_name(stem), key.public_key(), (self.name, self.key))
        (directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        (directory / f"{stem}.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        return directory / f"{stem}.pem", directory / f"{stem}.key"


@pytest.fixture
def broker(tmp_path: Path) -> Any:
    if not mosquitto_available():
        pytest.skip("Mosquitto is not installed (apt-get install mosquitto)")
    directory = tmp_path / "pki"
    directory.mkdir()
    ca, other = Ca(directory, "msec test CA"), Ca(directory, "some other CA")
    server_cert, server_key = ca.issue_software(directory, "localhost")
    client_cert, client_key = ca.issue_software(directory, "software-client")
    pki = Pki(ca.path, server_cert, server_key, client_cert, client_key, other.path)
    mosquitto = Mosquitto(tmp_path / "broker", pki).start()
    yield mosquitto, ca, other
    mosquitto.kill()


@pytest.fixture
def provisioned(swtpm: Swtpm, tmp_path: Path) -> tuple[KeystoreConfig, Path]:
    config = KeystoreConfig(backend="tpm", tcti=swtpm.tcti)
    state = tmp_path / "state"
    with open_keystore(config, state, create_missing=True):  # `msec-agent keys init`
        pass
    return config, state


# -- the agent in a child process --------------------------------------------------------------------------
def run_agent(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs `steps` in a fresh interpreter (see the module docstring); one result per step."""
    return run_steps_in_child("tests.security.keystore.test_tls_key", steps)


def _child(steps: list[dict[str, Any]]) -> None:  # pragma: no cover - runs in the child process
    import hashlib  # noqa: F401 - OpenSSL has read its config by now: OPENSSL_CONF would be too late
    import ssl

    from agent.core.runtime import State
    from agent.security.keystore import KeystoreError
    from agent.security.keystore.tls_key import enable_tpm_tls, tpm_provider_active
    from tests.northbound.mqtt.conftest import Harness, reading

    assert "OPENSSL_CONF" not in os.environ and ssl.OPENSSL_VERSION
    for number, step in enumerate(steps):
        result: dict[str, Any] = {"step": number}
        if "enable" in step:
            try:
                enable_tpm_tls(step["enable"]["tcti"], Path(step["enable"]["openssl_config"]))
                result["enabled"] = tpm_provider_active()
            except KeystoreError as error:
                result["enable_error"] = f"{type(error).__name__}: {error}"
        if "mqtt" in step:
            directory = Path(step["directory"])
            directory.mkdir(parents=True)
            harness = Harness(directory)
            try:
                harness.append([reading("truck", "env", "t", number)])
                harness.start(**step["mqtt"])
                deadline = time.monotonic() + 20
                while harness.depth() and harness.health().state is not State.FAILED:
                    assert time.monotonic() < deadline, "neither delivered nor failed"
                    time.sleep(0.02)
                result["delivered"] = harness.depth() == 0
                result["detail"] = harness.health().detail
            finally:
                harness.close()
        print(json.dumps(result), flush=True)


def _mqtt(port: int, ca: Path, cert: Path, key: Path, kind: str = "tpm") -> dict[str, Any]:
    tls = {"ca_file": str(ca), "cert_file": str(cert), "key_file": str(key), "key": kind}
    return {"host": "localhost", "port": port, "tls": tls, "connect_timeout": 5.0}


# -- tests -------------------------------------------------------------------------------------------------
def test_the_publisher_authenticates_with_the_tpm_key_and_no_private_key_is_on_disk(
    swtpm: Swtpm, provisioned: tuple[KeystoreConfig, Path], broker: Any, tmp_path: Path
) -> None:
    from tpm2_pytss import ESAPI, TPMA_OBJECT
    from tpm2_pytss.tsskey import TSSPrivKey

    config, state = provisioned
    mosquitto, ca, _ = broker
    files = create_tls_key(config, state, DEVICE)
    assert files.created and create_tls_key(config, state, DEVICE).created is False  # idempotent
    cert = ca.sign_csr(files.csr_file, tmp_path / "client.pem")
    consumer = Consumer(mosquitto.port)
    try:
        [enabled, published] = run_agent(
            [
                {"enable": {"tcti": swtpm.tcti, "openssl_config": str(files.openssl_config)}},
                {"mqtt": _mqtt(mosquitto.mtls_port, ca.path, cert, files.key_file), "directory": str(
                    tmp_path / "agent")},
            ]
        )  # fmt: skip
        assert enabled == {"step": 0, "enabled": True}
        assert published["delivered"], published
        deadline = time.monotonic() + 10
        while not consumer.data():
            assert time.monotonic() < deadline, "the broker did not pass the message on"
            time.sleep(0.02)
        assert consumer.data()[0].topic.startswith(f"msec/{DEVICE}/")
    finally:
        consumer.close()

    # The key file is a TPM-wrapped blob: no private key in the clear, anywhere in the state directory.
    assert is_tss2_blob(files.key_file)
    with pytest.raises((ValueError, TypeError)):
        serialization.load_pem_private_key(files.key_file.read_bytes(), None)
    for path in state.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert b"PRIVATE KEY-----" not in data or data.lstrip().startswith(TSS2_PEM_LABEL), path
    blob = TSSPrivKey.from_pem(files.key_file.read_bytes())
    assert blob.parent == config.srk_handle and blob.empty_auth
    with ESAPI(swtpm.tcti) as ctx:
        handle = blob.load(ctx)
        try:
            public = ctx.read_public(handle)[0]
        finally:
            ctx.flush_context(handle)
    attributes = public.publicArea.objectAttributes
    assert attributes & TPMA_OBJECT.FIXEDTPM and attributes & TPMA_OBJECT.SENSITIVEDATAORIGIN
    certified = x509.load_pem_x509_certificate(cert.read_bytes()).public_key()
    assert certified == serialization.load_pem_public_key(public.to_pem()) == files.public_key


def test_wrong_or_absent_keys_are_refused(
    swtpm: Swtpm,
    provisioned: tuple[KeystoreConfig, Path],
    broker: Any,
    session_bus: Any,
    tmp_path: Path,
) -> None:
    config, state = provisioned
    mosquitto, ca, other_ca = broker
    files = create_tls_key(config, state, DEVICE)
    good_cert = ca.sign_csr(files.csr_file, tmp_path / "client.pem")
    foreign_cert = other_ca.sign_csr(files.csr_file, tmp_path / "foreign.pem")  # right key, untrusted CA
    software_cert, software_key = ca.issue_software(tmp_path, "software")
    # A blob from another TPM (same SRK handle, other seed): useless here.
    other_tpm = Swtpm(tmp_path / "other-tpm", session_bus).start()
    try:
        other_config = KeystoreConfig(backend="tpm", tcti=other_tpm.tcti)
        with open_keystore(other_config, tmp_path / "other", create_missing=True):
            pass
        other_files = create_tls_key(other_config, tmp_path / "other", DEVICE)
    finally:
        other_tpm.stop()
    port, enable = mosquitto.mtls_port, {"tcti": swtpm.tcti, "openssl_config": str(files.openssl_config)}

    def attempt(name: str, mqtt: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"mqtt": mqtt, "directory": str(tmp_path / f"agent-{name}"), **extra}

    results = run_agent(
        [
            attempt("not-enabled", _mqtt(port, ca.path, good_cert, files.key_file)),
            attempt("foreign-ca", _mqtt(port, ca.path, foreign_cert, files.key_file), enable=enable),
            attempt("other-tpm", _mqtt(port, ca.path, good_cert, other_files.key_file)),
            attempt("mismatch", _mqtt(port, ca.path, software_cert, files.key_file)),
            attempt("plain-file", _mqtt(port, ca.path, software_cert, software_key)),
            attempt("no-client-cert", {**_mqtt(port, ca.path, good_cert, files.key_file), "tls": {
                "ca_file": str(ca.path)}}),
            attempt("good", _mqtt(port, ca.path, good_cert, files.key_file)),
            {"enable": {**enable, "tcti": "device:/nonexistent"}},
        ]
    )  # fmt: skip
    by_name = dict(
        zip(
            ["not-enabled", "foreign-ca", "other-tpm", "mismatch", "plain-file", "no-client-cert", "good"],
            results,
            strict=False,
        )
    )
    for name, result in by_name.items():
        assert result["delivered"] is (name == "good"), (name, result)
    assert "provider is not active" in by_name["not-enabled"]["detail"]
    assert by_name["foreign-ca"]["enabled"] is True
    assert "cannot use the TPM key (PEM_LIB: the blob does not load" in by_name["other-tpm"]["detail"]
    assert "cannot use the TPM key (KEY_VALUES_MISMATCH" in by_name["mismatch"]["detail"]
    assert "not a TPM-wrapped key" in by_name["plain-file"]["detail"]
    assert "before CONNACK" in by_name["foreign-ca"]["detail"]  # the broker ends the handshake
    assert "before CONNACK" in by_name["no-client-cert"]["detail"]
    log = mosquitto.log.read_text()
    assert "certificate verify failed" in log and "peer did not return a certificate" in log, log[-2000:]
    assert "bound to TCTI" in results[-1]["enable_error"]  # one TPM per process


def test_enabling_without_a_reachable_tpm_is_a_clear_error(tmp_path: Path, session_bus: Any) -> None:
    from agent.security.keystore.tls_key import write_openssl_config

    path = write_openssl_config(tmp_path)
    [result] = run_agent([{"enable": {"tcti": f"device:{tmp_path}/tpmrm0", "openssl_config": str(path)}}])
    assert result["enable_error"].startswith("TpmAbsent: no TPM reachable through TCTI"), result


def test_mqtt_tls_key_option() -> None:
    tls = {"ca_file": "/ca.pem", "cert_file": "/c.pem", "key_file": "/k.tss2", "key": "tpm"}
    assert MqttSection.model_validate({"host": "h", "tls": tls}).tls.key == "tpm"  # type: ignore[union-attr]
    assert MqttSection.model_validate({"host": "h", "tls": {"ca_file": "/ca.pem"}}).tls.key == "file"  # type: ignore[union-attr]
    with pytest.raises(ValidationError, match="needs cert_file and key_file"):
        MqttSection.model_validate({"host": "h", "tls": {"key": "tpm"}})
    with pytest.raises(ValidationError, match="no key_password"):
        MqttSection.model_validate({"host": "h", "tls": {**tls, "key_password": "env:X"}})
    with pytest.raises(ValidationError):
        MqttSection.model_validate({"host": "h", "tls": {**tls, "key": "hsm"}})


if __name__ == "__main__":  # the child process of run_agent()
    _child(json.loads(sys.argv[1]))
