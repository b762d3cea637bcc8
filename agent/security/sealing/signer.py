"""The short-lived record-signing key: software ECDSA P-256, certified by the identity key, rotated.

A TPM signs a few times per second at best (image_tpm.md §1.4); records come by the thousand. So the TPM
signs one certificate per rotation (at boot and every `rotate_seconds`) and this key signs the records.
Its private half lives only in memory: a restart makes a new one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from ..keystore import Keystore
from ..keystore.jwk import b64url, thumbprint
from .certificate import RECORD_TYPE, issue_certificate
from .compact import compact_json, der_to_jose

log = logging.getLogger("agent.sealing")

_ECDSA = ec.ECDSA(hashes.SHA256())


@dataclass(frozen=True, slots=True)
class Epoch:
    key: ec.EllipticCurvePrivateKey
    kid: str
    certificate: str
    not_before: int
    rotate_at: float
    protected: str  # the record header, base64url: the same for every record of this epoch


class RotatingSigner:
    def __init__(
        self,
        keystore: Keystore,
        device_id: str,
        *,
        rotate_seconds: int = 3600,
        grace_seconds: int = 300,
        embed_certificate: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keystore = keystore
        self.device_id = device_id
        self.rotate_seconds = rotate_seconds
        self.grace_seconds = grace_seconds
        self.embed_certificate = embed_certificate
        self.clock = clock
        self.rotations = 0
        self.on_rotate: list[Callable[[str], None]] = []  # e.g. publish the certificate with the device meta
        self._lock = threading.Lock()
        self._epoch = self._new_epoch(clock())

    @property
    def certificate(self) -> str:
        return self._epoch.certificate

    def epoch(self, now: float) -> Epoch:
        epoch = self._epoch
        # Also when the clock stepped back (NTP after a boot without RTC): records must fall in [nbf, exp].
        if now >= epoch.rotate_at or now < epoch.not_before:
            with self._lock:
                epoch = self._epoch
                if now >= epoch.rotate_at or now < epoch.not_before:
                    epoch = self._epoch = self._new_epoch(now)
                    for callback in self.on_rotate:
                        callback(epoch.certificate)
        return epoch

    def _new_epoch(self, now: float) -> Epoch:
        key = ec.generate_private_key(ec.SECP256R1())
        not_before = int(now)
        expires = not_before + self.rotate_seconds + self.grace_seconds
        certificate = issue_certificate(self.keystore, self.device_id, key.public_key(), not_before, expires)
        kid = thumbprint(key.public_key())
        header = {"alg": "ES256", "typ": RECORD_TYPE, "kid": kid}
        if self.embed_certificate:
            header["kcrt"] = certificate
        self.rotations += 1
        log.info("new record-signing key %s, certified until %d", kid, expires)
        return Epoch(
            key, kid, certificate, not_before, not_before + self.rotate_seconds, b64url(compact_json(header))
        )

    def sign(self, payload: bytes, now: float) -> str:
        epoch = self.epoch(now)
        signing_input = f"{epoch.protected}.{b64url(payload)}"
        signature = der_to_jose(epoch.key.sign(signing_input.encode("ascii"), _ECDSA))
        return f"{signing_input}.{b64url(signature)}"
