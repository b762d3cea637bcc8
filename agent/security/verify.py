"""Verifying sealed records, as a consumer does: `verify_record(...)` returns a `Verdict`, never raises.

A consumer needs only the device's registered identity public key (and its own private key for encrypted
records). Each record carries (or the device's meta provides) the certificate of the key that signed it.
Checks, in order, each with its own verdict:

    structure       TRUNCATED             not three base64url parts / not JSON / short signature
    recipient       NOT_FOR_RECIPIENT     an encrypted record with no entry for any of our keys
    certificate     FOREIGN_CERTIFICATE   unknown device, or not signed by that device's identity key
    signature       INVALID               content or signature altered (or undecryptable ciphertext)
    validity        EXPIRED_CERTIFICATE   the record's time is outside the key certificate's validity
    sequence        REPLAYED / REORDERED  seen before / older than the newest seen on its stream
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwe, jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from .keystore.jwk import b64url_decode, jwk_public_key, thumbprint
from .sealing.certificate import CERT_TYPE, RECORD_TYPE


class Status(StrEnum):
    VALID = "valid"
    INVALID = "invalid"
    REPLAYED = "replayed"
    REORDERED = "reordered"
    EXPIRED_CERTIFICATE = "expired-certificate"
    FOREIGN_CERTIFICATE = "foreign-certificate"
    NOT_FOR_RECIPIENT = "not-for-recipient"
    TRUNCATED = "truncated"


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    reason: str = ""
    device: str | None = None
    stream: str | None = None
    seq: int | None = None
    timestamp: float | None = None
    record: Any = None  # the recorder's JSON, only when the signature verified
    encrypted: bool = False
    signing_kid: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is Status.VALID


class ReplayGuard:
    """Per (device, stream): the newest sequence number and a window of recent ones.

    Older than the window, a record cannot be told from a replay and is reported as one."""

    def __init__(self, window: int = 4096) -> None:
        self.window = window
        self._lock = threading.Lock()
        self._streams: dict[tuple[str, str], tuple[int, set[int], deque[int]]] = {}

    def check(self, device: str, stream: str, seq: int) -> Status:
        with self._lock:
            highest, seen, order = self._streams.get((device, stream), (0, set(), deque()))
            if seq in seen or seq <= highest - self.window:
                return Status.REPLAYED
            status = Status.VALID if seq > highest else Status.REORDERED
            seen.add(seq)
            order.append(seq)
            while len(order) > self.window:
                seen.discard(order.popleft())
            self._streams[(device, stream)] = (max(highest, seq), seen, order)
            return status


class _Reject(Exception):
    def __init__(self, status: Status, reason: str, **context: Any) -> None:
        super().__init__(reason)
        self.verdict = Verdict(status, reason, **context)


def _json_part(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(b64url_decode(text))
    except (ValueError, UnicodeDecodeError):
        raise _Reject(Status.TRUNCATED, f"{what} is not base64url JSON") from None
    if not isinstance(value, dict):
        raise _Reject(Status.TRUNCATED, f"{what} is not a JSON object")
    return value


def _split(token: str, what: str) -> tuple[dict[str, Any], dict[str, Any]]:
    parts = token.split(".")
    if len(parts) != 3:
        raise _Reject(Status.TRUNCATED, f"{what} has {len(parts)} part(s), a compact JWS has 3")
    header, payload = _json_part(parts[0], f"{what} header"), _json_part(parts[1], f"{what} payload")
    try:
        signature = b64url_decode(parts[2])
    except ValueError:
        raise _Reject(Status.TRUNCATED, f"{what} signature is not base64url") from None
    if len(signature) != 64:
        raise _Reject(Status.TRUNCATED, f"{what} signature has {len(signature)} bytes, ES256 has 64")
    if header.get("alg") != "ES256":
        raise _Reject(Status.INVALID, f"{what} algorithm {header.get('alg')!r} is not ES256")
    return header, payload


def _registry() -> jws.JWSRegistry:
    # joserfc caps protected headers at 512 bytes (a DoS guard); a record header embeds the ~700-byte key
    # certificate ("kcrt", a non-critical private parameter, hence no strict header check).
    registry = jws.JWSRegistry(algorithms=["ES256"], strict_check_header=False)
    registry.max_header_length = 2048
    return registry


_JWS_REGISTRY = _registry()


def _verified(token: str, key: ec.EllipticCurvePublicKey) -> bool:
    try:
        jws.deserialize_compact(token, ECKey.import_key(key), registry=_JWS_REGISTRY)
    except JoseError:
        return False
    return True


def _decrypt(document: str, recipient_keys: Sequence[ec.EllipticCurvePrivateKey]) -> str:
    try:
        message = json.loads(document)
        kids = {r["header"]["kid"] for r in message["recipients"]}
        for field_name in ("protected", "iv", "ciphertext", "tag"):
            b64url_decode(message[field_name])
    except (ValueError, KeyError, TypeError):
        raise _Reject(Status.TRUNCATED, "not a complete JWE JSON document") from None
    ours = [key for key in recipient_keys if thumbprint(key.public_key()) in kids]
    if not ours:
        raise _Reject(Status.NOT_FOR_RECIPIENT, "encrypted for other recipients", encrypted=True)
    registry = jwe.JWERegistry(verify_all_recipients=False)
    try:
        plaintext = jwe.decrypt_json(message, ECKey.import_key(ours[0]), registry=registry).plaintext
        return (plaintext or b"").decode("ascii")
    except (JoseError, ValueError, UnicodeDecodeError):
        raise _Reject(
            Status.INVALID, "cannot decrypt: ciphertext, tag or header altered", encrypted=True
        ) from None


def verify_record(
    sealed: bytes | str,
    *,
    identities: Mapping[str, ec.EllipticCurvePublicKey],
    recipient_keys: Sequence[ec.EllipticCurvePrivateKey] = (),
    replay: ReplayGuard | None = None,
    certificates: Mapping[str, str] | None = None,
) -> Verdict:
    """`identities`: device id → registered identity public key. `certificates`: signing kid → key
    certificate, for records sealed without an embedded one. `replay`: keep one per consumer to detect
    replayed and reordered records; without it those checks are skipped."""
    try:
        return _verify(sealed, identities, recipient_keys, replay, certificates or {})
    except _Reject as rejected:
        return rejected.verdict
    except Exception as error:  # a verifier that crashes on hostile input is a denial of service
        return Verdict(Status.INVALID, f"unverifiable: {type(error).__name__}")


def _verify(
    sealed: bytes | str,
    identities: Mapping[str, ec.EllipticCurvePublicKey],
    recipient_keys: Sequence[ec.EllipticCurvePrivateKey],
    replay: ReplayGuard | None,
    certificates: Mapping[str, str],
) -> Verdict:
    try:
        token = sealed.decode("utf-8") if isinstance(sealed, bytes) else sealed
    except UnicodeDecodeError:
        raise _Reject(Status.TRUNCATED, "not UTF-8 text") from None
    token = token.strip()
    encrypted = token.startswith("{")
    if encrypted:
        token = _decrypt(token, recipient_keys)

    header, claims = _split(token, "record")
    if header.get("typ") != RECORD_TYPE:
        raise _Reject(Status.INVALID, f"record type {header.get('typ')!r} is not {RECORD_TYPE}")
    kid = header.get("kid")
    certificate = header.get("kcrt") or certificates.get(str(kid))
    if not isinstance(certificate, str):
        raise _Reject(
            Status.FOREIGN_CERTIFICATE, f"no certificate for signing key {kid}", encrypted=encrypted
        )

    # The certificate: issued by the identity key of the device it names.
    cert_header, cert = _split(certificate, "key certificate")
    device = cert.get("iss")
    identity = identities.get(device) if isinstance(device, str) else None
    if cert_header.get("typ") != CERT_TYPE or identity is None:
        raise _Reject(
            Status.FOREIGN_CERTIFICATE, f"certificate of an unknown device {device!r}", encrypted=encrypted
        )
    if not _verified(certificate, identity):
        raise _Reject(
            Status.FOREIGN_CERTIFICATE,
            f"key certificate not signed by the identity key of {device}",
            device=device,
            encrypted=encrypted,
        )
    try:
        signing_key = jwk_public_key(cert["jwk"])
    except (KeyError, TypeError, ValueError):
        raise _Reject(Status.INVALID, "key certificate without a P-256 key", device=device) from None
    if thumbprint(signing_key) != kid or cert.get("kid") != kid:
        raise _Reject(Status.INVALID, "record key id does not match its certificate", device=device)

    context: dict[str, Any] = {"device": device, "encrypted": encrypted, "signing_kid": kid}
    if not _verified(token, signing_key):
        raise _Reject(Status.INVALID, "signature does not match the content", **context)
    stream, seq, iat = claims.get("stream"), claims.get("seq"), claims.get("iat")
    context.update(stream=stream, seq=seq, timestamp=iat)
    if claims.get("dev") != device:
        raise _Reject(
            Status.FOREIGN_CERTIFICATE,
            f"record of {claims.get('dev')!r} signed under {device}'s key",
            **context,
        )
    if not (
        isinstance(stream, str) and type(seq) is int and isinstance(iat, int | float) and "rec" in claims
    ):
        raise _Reject(Status.INVALID, "record claims incomplete (dev, stream, seq, iat, rec)", **context)
    if not cert.get("nbf", 0) <= iat <= cert.get("exp", 0):
        raise _Reject(
            Status.EXPIRED_CERTIFICATE, "record time outside its key certificate's validity", **context
        )
    if replay is not None:
        status = replay.check(device, stream, seq)
        if status is not Status.VALID:
            raise _Reject(status, f"sequence {seq} on {stream}: {status.value}", **context)
    return Verdict(Status.VALID, "", record=claims["rec"], **context)
