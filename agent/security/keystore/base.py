"""The Keystore interface: what the agent asks of a key store, whatever holds the keys.

Two private keys and a place for small secrets:
- the *identity* key (ECDSA P-256) names the device; its public key is registered with the fleet backend;
- the *ECDH* key (P-256, decrypt only) lets senders encrypt to the device; kept apart from the signer
  because a TPM key is either a signer or a decrypter, and one key doing both invites cross-protocol attacks;
- sealed secrets: small values (passwords, API tokens) bound to this keystore, optionally to PCR values.

Implementations: `TpmKeystore` (tpm.py) and `SoftwareKeystore` (software.py, `insecure = True`).
"""

from __future__ import annotations

import json
import os
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .errors import KeyMissing, KeystoreError
from .jwk import thumbprint

_SEALED_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True, slots=True)
class KeyInfo:
    backend: str  # "tpm" or "software"
    insecure: bool
    identity_kid: str  # RFC 7638 thumbprint of the identity public key
    identity_public_pem: str
    ecdh_kid: str
    location: str  # where the keys live: TPM handles + TCTI, or a directory
    sealed: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class KeystoreHealth:
    ok: bool
    insecure: bool
    detail: str


class Keystore(ABC):
    """Thread-safe: every private-key operation runs under one lock (a TPM context is single-threaded)."""

    backend: str
    insecure: bool

    def __init__(self, sealed: SealedBlobs) -> None:
        self._lock = threading.RLock()
        self._sealed = sealed
        # Private-key operations done (sign, ecdh, unseal, seal): the sealer's rate claim is checked on it.
        self.operations = 0

    # --- keys -------------------------------------------------------------------------------------------
    @abstractmethod
    def identity_public_key(self) -> ec.EllipticCurvePublicKey: ...

    @abstractmethod
    def ecdh_public_key(self) -> ec.EllipticCurvePublicKey: ...

    @abstractmethod
    def sign(self, data: bytes) -> bytes:
        """ECDSA P-256 / SHA-256 signature of `data` by the identity key, DER-encoded (as `cryptography`)."""

    @abstractmethod
    def ecdh(self, peer: ec.EllipticCurvePublicKey) -> bytes:
        """The ECDH shared secret Z (32 bytes, the x coordinate) of the ECDH key with `peer`."""

    @abstractmethod
    def seal(self, name: str, secret: bytes, *, pcrs: Sequence[int] = (), auth: bytes | None = None) -> None:
        """Store `secret` so only this keystore unseals it (given `auth`, while the PCRs keep values)."""

    @abstractmethod
    def unseal(self, name: str, *, auth: bytes | None = None) -> bytes: ...

    @abstractmethod
    def _x509_signer(self) -> ec.EllipticCurvePrivateKey:
        """A `cryptography` private key object backed by the identity key, for X.509 builders."""

    @abstractmethod
    def location(self) -> str: ...

    def close(self) -> None:  # noqa: B027  (optional hook)
        """Release the connection to the key store."""

    def __enter__(self) -> Keystore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- shared behaviour --------------------------------------------------------------------------------
    def csr(self, common_name: str) -> bytes:
        """A PEM PKCS#10 request for the identity key, signed inside the key store (for provisioning)."""
        with self._lock:
            self.operations += 1
            request = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                .sign(self._x509_signer(), hashes.SHA256())
            )
        return request.public_bytes(serialization.Encoding.PEM)

    def unseal_text(self, name: str) -> str:
        """For `tpm:NAME` secret references (agent.security.secrets.TpmResolver)."""
        try:
            return self.unseal(name).decode("utf-8")
        except UnicodeDecodeError:
            raise KeystoreError(f"sealed secret {name!r} is not UTF-8 text") from None

    def sealed_names(self) -> tuple[str, ...]:
        return self._sealed.names()

    def info(self) -> KeyInfo:
        identity = self.identity_public_key()
        return KeyInfo(
            backend=self.backend,
            insecure=self.insecure,
            identity_kid=thumbprint(identity),
            identity_public_pem=identity.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ).decode(),
            ecdh_kid=thumbprint(self.ecdh_public_key()),
            location=self.location(),
            sealed=self.sealed_names(),
        )

    def health(self) -> KeystoreHealth:
        """Whether the identity key answers. Reads only public data: no private-key operation is spent."""
        try:
            kid = thumbprint(self.identity_public_key())
        except KeystoreError as error:
            return KeystoreHealth(False, self.insecure, str(error))
        note = " — INSECURE software keystore, for development only" if self.insecure else ""
        return KeystoreHealth(True, self.insecure, f"{self.backend} identity {kid}{note}")


class SealedBlobs:
    """Sealed objects as small JSON files, one per name, written atomically (power cuts keep the old one)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @staticmethod
    def check_name(name: str) -> str:
        if not isinstance(name, str) or not _SEALED_NAME.match(name):
            raise KeystoreError(
                "a sealed secret name is 1-64 letters, digits, '_', '.', '-' (not starting with '.' or '-')"
            )
        return name

    def path(self, name: str) -> Path:
        return self.directory / f"{self.check_name(name)}.json"

    def write(self, name: str, document: dict[str, Any]) -> None:
        path = self.path(name)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(document, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)

    def read(self, name: str) -> dict[str, Any]:
        path = self.path(name)
        try:
            document = json.loads(path.read_text())
        except FileNotFoundError:
            raise KeyMissing(f"no sealed secret named {name!r} (looked for {path})") from None
        except (OSError, ValueError) as error:
            raise KeystoreError(f"sealed secret {name!r} is unreadable: {error}") from None
        if not isinstance(document, dict):
            raise KeystoreError(f"sealed secret {name!r} is not a sealed-object file")
        return document

    def names(self) -> tuple[str, ...]:
        if not self.directory.is_dir():
            return ()
        return tuple(sorted(p.stem for p in self.directory.glob("*.json") if _SEALED_NAME.match(p.stem)))
