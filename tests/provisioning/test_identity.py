"""The identity checks on the operator's side: a CSR must be the exported key's and name the device; the
fleet CA issues for it and recognises its own earlier certificate."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from msec_provision.errors import ProvisioningError
from msec_provision.identity import FleetCa, check_csr, key_fingerprint, load_public_key

from .conftest import make_ca


def csr_for(key: ec.EllipticCurvePrivateKey, name: str) -> bytes:
    request = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(key, hashes.SHA256())
    )
    return request.public_bytes(serialization.Encoding.PEM)


def pem(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_csr_checks() -> None:
    device, stranger = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    public = load_public_key(pem(device.public_key()), "truck-7")
    assert check_csr(csr_for(device, "truck-7"), public, "truck-7")
    with pytest.raises(ProvisioningError, match="for another key"):
        check_csr(csr_for(stranger, "truck-7"), public, "truck-7")
    with pytest.raises(ProvisioningError, match="names"):
        check_csr(csr_for(device, "truck-8"), public, "truck-7")
    with pytest.raises(ProvisioningError, match="not a readable PKCS#10"):
        check_csr(b"-----BEGIN CERTIFICATE REQUEST-----\ngarbage\n", public, "truck-7")
    with pytest.raises(ProvisioningError, match="not a readable PKCS#10"):
        check_csr(csr_for(device, "truck-7")[:200], public, "truck-7")  # truncated


def test_public_key_checks() -> None:
    with pytest.raises(ProvisioningError, match="no readable public key"):
        load_public_key(b"not a key", "truck-7")
    other_curve = ec.generate_private_key(ec.SECP384R1()).public_key()
    with pytest.raises(ProvisioningError, match="not a P-256 key"):
        load_public_key(pem(other_curve), "truck-7")
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    assert key_fingerprint(key).startswith("sha256:") and len(key_fingerprint(key)) == 7 + 64


def test_fleet_ca_issues_and_recognises(tmp_path: Path) -> None:
    ca = FleetCa.load(*make_ca(tmp_path / "ca"))
    device = ec.generate_private_key(ec.SECP256R1())
    request = check_csr(csr_for(device, "truck-7"), device.public_key(), "truck-7")
    issued = ca.issue(request, "truck-7")
    certificate = x509.load_pem_x509_certificate(issued)
    certificate.verify_directly_issued_by(ca.certificate)
    assert certificate.subject.rfc4514_string() == "CN=truck-7"
    assert ca.issued_this(issued, device.public_key())
    assert not ca.issued_this(issued, ec.generate_private_key(ec.SECP256R1()).public_key())
    other = FleetCa.load(*make_ca(tmp_path / "other"))
    assert not other.issued_this(issued, device.public_key())
    assert not ca.issued_this(b"garbage", device.public_key())


def test_fleet_ca_load_errors_show_no_key_material(tmp_path: Path) -> None:
    cert, key = make_ca(tmp_path / "ca")
    _, other_key = make_ca(tmp_path / "other")
    with pytest.raises(ProvisioningError, match="does not belong"):
        FleetCa.load(cert, other_key)
    key.write_text("-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n")
    with pytest.raises(ProvisioningError) as caught:
        FleetCa.load(cert, key)
    assert "cannot load" in str(caught.value) and "MIGH" not in str(caught.value)
