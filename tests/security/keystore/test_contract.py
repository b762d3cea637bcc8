"""What every keystore backend must do, run against the software keystore and a real swtpm."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agent.security.keystore import (
    AuthFailed,
    KeyMissing,
    Keystore,
    KeystoreConfig,
    KeystoreError,
    open_keystore,
)
from agent.security.keystore.jwk import jwk_public_key, public_jwk, thumbprint


@pytest.fixture(params=["software", "tpm"])
def keystore(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Keystore]:
    if request.param == "tpm":
        simulator = request.getfixturevalue("swtpm")
        config = KeystoreConfig(backend="tpm", tcti=simulator.tcti)
    else:
        config = KeystoreConfig(backend="software")
    with open_keystore(config, tmp_path, create_missing=True) as store:
        yield store


def test_signatures_verify_with_the_identity_public_key(keystore: Keystore) -> None:
    signature = keystore.sign(b"reading 42")
    keystore.identity_public_key().verify(signature, b"reading 42", ec.ECDSA(hashes.SHA256()))
    with pytest.raises(InvalidSignature):
        keystore.identity_public_key().verify(signature, b"reading 43", ec.ECDSA(hashes.SHA256()))


def test_ecdh_agrees_with_a_peer(keystore: Keystore) -> None:
    peer = ec.generate_private_key(ec.SECP256R1())
    assert keystore.ecdh(peer.public_key()) == peer.exchange(ec.ECDH(), keystore.ecdh_public_key())


def test_seal_and_unseal(keystore: Keystore) -> None:
    keystore.seal("wifi-psk", b"correct horse")
    keystore.seal("api-token", b"t0ken", auth=b"pin")
    assert keystore.unseal("wifi-psk") == b"correct horse"
    assert keystore.unseal_text("wifi-psk") == "correct horse"
    assert keystore.unseal("api-token", auth=b"pin") == b"t0ken"
    with pytest.raises(AuthFailed):
        keystore.unseal("api-token", auth=b"wrong")
    assert keystore.sealed_names() == ("api-token", "wifi-psk")


def test_unsealing_an_unknown_or_badly_named_secret_is_a_clear_error(keystore: Keystore) -> None:
    with pytest.raises(KeyMissing, match="no sealed secret named 'nope'"):
        keystore.unseal("nope")
    with pytest.raises(KeystoreError, match="sealed secret name"):
        keystore.seal("../etc/passwd", b"x")


def test_csr_is_signed_by_the_identity_key(keystore: Keystore) -> None:
    request = x509.load_pem_x509_csr(keystore.csr("truck-0001"))
    assert request.is_signature_valid
    assert request.public_key() == keystore.identity_public_key()
    assert request.subject.rfc4514_string() == "CN=truck-0001"


def test_info_and_health_name_the_identity_and_the_insecure_flag(keystore: Keystore) -> None:
    info = keystore.info()
    kid = thumbprint(keystore.identity_public_key())
    assert info.identity_kid == kid
    assert (
        serialization.load_pem_public_key(info.identity_public_pem.encode()) == keystore.identity_public_key()
    )
    assert info.insecure is keystore.insecure is (keystore.backend == "software")
    health = keystore.health()
    assert health.ok and kid in health.detail
    assert ("INSECURE" in health.detail) is keystore.insecure


def test_private_key_operations_are_counted(keystore: Keystore) -> None:
    before = keystore.operations
    keystore.sign(b"a")
    keystore.identity_public_key()
    keystore.health()
    assert keystore.operations == before + 1  # reading public data costs no TPM operation


def test_jwk_round_trip() -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    assert jwk_public_key(public_jwk(key)) == key
