"""The device's identity as the operator sees it: the public key the TPM exported, its CSR, and the
certificate the fleet CA issues for it (or, without a CA, the recorded key alone)."""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .errors import ProvisioningError

CERT_DAYS = 3650  # the device's identity lives as long as its TPM; revocation is the inventory's job


def public_der(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def key_fingerprint(key: ec.EllipticCurvePublicKey) -> str:
    """SHA-256 of the SubjectPublicKeyInfo, as `sha256:<hex>`: what the inventory records."""
    return "sha256:" + hashlib.sha256(public_der(key)).hexdigest()


def load_public_key(pem: bytes, device_id: str) -> ec.EllipticCurvePublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise ProvisioningError(f"{device_id}: the device exported no readable public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ProvisioningError(f"{device_id}: the identity key is not a P-256 key")
    return key


def check_csr(pem: bytes, key: ec.EllipticCurvePublicKey, device_id: str) -> x509.CertificateSigningRequest:
    """The CSR must be signed by the identity key the device exported, for this device's name."""
    try:
        csr = x509.load_pem_x509_csr(pem)
    except ValueError:
        raise ProvisioningError(f"{device_id}: the device's CSR is not a readable PKCS#10 request") from None
    if public_der(csr.public_key()) != public_der(key):  # type: ignore[arg-type]
        raise ProvisioningError(f"{device_id}: the CSR is for another key than the exported identity key")
    if not csr.is_signature_valid:
        raise ProvisioningError(f"{device_id}: the CSR's signature does not verify")
    names = [a.value for a in csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    if names != [device_id]:
        raise ProvisioningError(f"{device_id}: the CSR names {names!r}, not this device")
    return csr


@dataclass(frozen=True)
class FleetCa:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey | object

    @classmethod
    def load(cls, cert_path: Path, key_path: Path) -> FleetCa:
        try:
            certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as error:
            # TypeError: an encrypted key; never echo the file's content
            raise ProvisioningError(
                f"fleet CA ({cert_path}, {key_path}): cannot load: {type(error).__name__}"
            ) from None
        if public_der(certificate.public_key()) != public_der(key.public_key()):  # type: ignore[arg-type,union-attr]
            raise ProvisioningError("fleet CA: ca_key does not belong to ca_cert")
        return cls(certificate, key)

    def issue(self, csr: x509.CertificateSigningRequest, device_id: str) -> bytes:
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device_id)]))
            .issuer_name(self.certificate.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
            )
        )
        certificate = builder.sign(self.key, hashes.SHA256())  # type: ignore[arg-type]
        return certificate.public_bytes(serialization.Encoding.PEM)

    def issued_this(self, pem: bytes, key: ec.EllipticCurvePublicKey) -> bool:
        """An earlier certificate is kept if this CA issued it for this very key and it is still valid."""
        try:
            certificate = x509.load_pem_x509_certificate(pem)
            certificate.verify_directly_issued_by(self.certificate)
        except (ValueError, TypeError, InvalidSignature):
            return False
        fresh = certificate.not_valid_after_utc > datetime.datetime.now(datetime.UTC)
        return fresh and public_der(certificate.public_key()) == public_der(key)  # type: ignore[arg-type]
