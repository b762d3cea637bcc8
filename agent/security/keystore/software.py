"""Software keystore for development machines: same interface as the TPM, keys in files. INSECURE.

Anyone who can read the state directory can copy the identity and impersonate the device, so this backend
says so on every occasion: `insecure = True`, a warning when opened, and in `health()`/`info()`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .base import Keystore, SealedBlobs
from .errors import AuthFailed, KeyMissing, KeystoreError
from .jwk import b64url, b64url_decode

log = logging.getLogger("agent.keystore")

_IDENTITY, _ECDH, _SEAL = "identity.pem", "ecdh.pem", "seal.key"


class SoftwareKeystore(Keystore):
    backend = "software"
    insecure = True

    def __init__(self, directory: Path, *, create_missing: bool = True) -> None:
        super().__init__(SealedBlobs(directory / "sealed"))
        self.directory = directory
        if create_missing:
            self.init()
        self._identity = self._load_key(_IDENTITY)
        self._ecdh = self._load_key(_ECDH)
        self._seal_key = self._read(_SEAL)
        log.warning(
            "INSECURE software keystore in %s: the device identity is a plain file; use the TPM backend on "
            "a real device",
            directory,
        )

    def init(self) -> bool:
        """Create missing key files; True when something was created. Idempotent."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        created = False
        for name in (_IDENTITY, _ECDH):
            if not (self.directory / name).exists():
                key = ec.generate_private_key(ec.SECP256R1())
                pem = key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
                self._write(name, pem)
                created = True
        if not (self.directory / _SEAL).exists():
            self._write(_SEAL, AESGCM.generate_key(256))
            created = True
        return created

    def _write(self, name: str, data: bytes) -> None:
        fd = os.open(self.directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)

    def _read(self, name: str) -> bytes:
        try:
            return (self.directory / name).read_bytes()
        except FileNotFoundError:
            raise KeyMissing(
                f"software keystore has no {name} in {self.directory}; run `msec-agent keys init`"
            ) from None

    def _load_key(self, name: str) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self._read(name), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise KeystoreError(f"{self.directory / name} is not an EC private key")
        return key

    def identity_public_key(self) -> ec.EllipticCurvePublicKey:
        return self._identity.public_key()

    def ecdh_public_key(self) -> ec.EllipticCurvePublicKey:
        return self._ecdh.public_key()

    def sign(self, data: bytes) -> bytes:
        with self._lock:
            self.operations += 1
            return self._identity.sign(data, ec.ECDSA(hashes.SHA256()))

    def ecdh(self, peer: ec.EllipticCurvePublicKey) -> bytes:
        with self._lock:
            self.operations += 1
            return self._ecdh.exchange(ec.ECDH(), peer)

    def seal(self, name: str, secret: bytes, *, pcrs: Sequence[int] = (), auth: bytes | None = None) -> None:
        if pcrs:
            raise KeystoreError("binding a secret to PCR values needs the TPM backend")
        nonce = os.urandom(12)
        # The name and the auth value are associated data: a blob renamed, or unsealed with the wrong auth,
        # fails authentication like on a TPM.
        sealed = AESGCM(self._seal_key).encrypt(nonce, secret, self._aad(name, auth))
        with self._lock:
            self.operations += 1
            self._sealed.write(
                name,
                {
                    "format": "software-aesgcm",
                    "nonce": b64url(nonce),
                    "data": b64url(sealed),
                    "auth": bool(auth),
                },
            )

    def unseal(self, name: str, *, auth: bytes | None = None) -> bytes:
        document = self._sealed.read(name)
        if document.get("format") != "software-aesgcm":
            raise KeystoreError(f"sealed secret {name!r} was not sealed by a software keystore")
        with self._lock:
            self.operations += 1
            try:
                return AESGCM(self._seal_key).decrypt(
                    b64url_decode(document["nonce"]), b64url_decode(document["data"]), self._aad(name, auth)
                )
            except (InvalidTag, KeyError, ValueError):
                raise AuthFailed(f"cannot unseal {name!r}: wrong auth value or a damaged blob") from None

    @staticmethod
    def _aad(name: str, auth: bytes | None) -> bytes:
        return name.encode() + b"\0" + (auth or b"")

    def _x509_signer(self) -> ec.EllipticCurvePrivateKey:
        return self._identity

    def location(self) -> str:
        return f"files in {self.directory} (INSECURE)"
