"""Sealing seam: what a publisher sends is `sealer.seal(payload)`.

The TPM keystore issue brings JWS signatures and JWE encryption behind this interface; until then the
publishers send `Unsealed` payloads (and say so in their health), through the same call.
"""

from __future__ import annotations

from typing import Protocol


class Sealer(Protocol):
    content_type: str  # e.g. "application/json", "application/jose"
    signed: bool
    encrypted: bool

    def seal(self, payload: bytes, *, stream: str) -> bytes:
        """The bytes to publish for one record's payload (a reading's JSON)."""
        ...


class Unsealed:
    content_type = "application/json"
    signed = False
    encrypted = False

    def seal(self, payload: bytes, *, stream: str) -> bytes:
        return payload


class SealingUnavailable(Exception):
    """Sealing is configured but its keystore cannot be used (TPM absent, locked out, key missing)."""


class UnavailableSealer:
    """Stands in when the keystore failed: every seal() refuses, so publishers pause (records stay in the
    outbox, their health says why) instead of sending data unsigned. Fail-closed."""

    content_type = "application/jose"
    signed = True
    encrypted = False

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def seal(self, payload: bytes, *, stream: str) -> bytes:
        raise SealingUnavailable(f"keystore unavailable: {self.reason}")
