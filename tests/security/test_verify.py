# ruff: noqa: F811  (the sealing fixtures are imported by name, so test arguments "redefine" them)
"""The verifier's verdicts, one per way a record can be wrong; it never raises."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from agent.security.keystore import Keystore, KeystoreConfig, open_keystore
from agent.security.sealing import JoseSealer
from agent.security.verify import ReplayGuard, Status, verify_record

from .sealing.conftest import Clock, clock, keystore, make_sealer, reading, recipients  # noqa: F401

STREAM = "truck/env/temperature"


@pytest.fixture
def identities(keystore: Keystore) -> dict[str, ec.EllipticCurvePublicKey]:
    return {"truck-7": keystore.identity_public_key()}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_a_good_record_is_valid_with_its_content(
    make_sealer: Callable[..., JoseSealer], identities: dict[str, ec.EllipticCurvePublicKey]
) -> None:
    verdict = verify_record(make_sealer().seal(reading(), stream=STREAM), identities=identities)
    assert verdict.ok, verdict
    assert (verdict.device, verdict.stream, verdict.seq) == ("truck-7", STREAM, 1)
    assert verdict.record == json.loads(reading())


def test_tampered_value_and_tampered_signature_are_invalid(
    make_sealer: Callable[..., JoseSealer], identities: dict[str, ec.EllipticCurvePublicKey]
) -> None:
    header, payload, signature = make_sealer().seal(reading(21.5), stream=STREAM).decode().split(".")
    forged = base64.urlsafe_b64decode(payload + "==").replace(b"21.5", b"99.9")
    tampered_value = f"{header}.{b64(forged)}.{signature}"
    raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
    raw[10] ^= 1
    tampered_signature = f"{header}.{payload}.{b64(bytes(raw))}"
    for token in (tampered_value, tampered_signature):
        verdict = verify_record(token, identities=identities)
        assert verdict.status is Status.INVALID and "signature" in verdict.reason
        assert verdict.record is None


def test_replayed_and_reordered(
    make_sealer: Callable[..., JoseSealer], identities: dict[str, ec.EllipticCurvePublicKey]
) -> None:
    sealer = make_sealer()
    first, second, third = (sealer.seal(reading(v), stream=STREAM) for v in (1, 2, 3))
    guard = ReplayGuard()
    assert verify_record(first, identities=identities, replay=guard).ok
    assert verify_record(third, identities=identities, replay=guard).ok
    assert verify_record(second, identities=identities, replay=guard).status is Status.REORDERED
    assert verify_record(third, identities=identities, replay=guard).status is Status.REPLAYED
    assert verify_record(second, identities=identities, replay=guard).status is Status.REPLAYED


def test_record_outside_its_certificate_validity_is_expired(
    make_sealer: Callable[..., JoseSealer], identities: dict[str, ec.EllipticCurvePublicKey], clock: Clock
) -> None:
    sealer = make_sealer()
    clock.now += 100
    # Re-sign a record claiming a time after the certificate expired, with the (still current) key.
    epoch = sealer.signer.epoch(clock.now)
    late = b'{"dev":"truck-7","stream":"%s","seq":9,"iat":%d,"rec":{}}' % (
        STREAM.encode(),
        epoch.not_before + 10**6,
    )
    verdict = verify_record(sealer.signer.sign(late, clock.now), identities=identities)
    assert verdict.status is Status.EXPIRED_CERTIFICATE


def test_certificate_of_another_device_is_foreign(
    make_sealer: Callable[..., JoseSealer], identities: dict[str, ec.EllipticCurvePublicKey], tmp_path: Path
) -> None:
    impostor = open_keystore(KeystoreConfig(backend="software"), tmp_path / "impostor", create_missing=True)
    # Another device's keystore certifies its key under our device's name: the identity key does not match.
    forged = make_sealer(device_id="truck-7", store=impostor).seal(reading(), stream=STREAM)
    verdict = verify_record(forged, identities=identities)
    assert verdict.status is Status.FOREIGN_CERTIFICATE and "identity key of truck-7" in verdict.reason
    unknown = make_sealer(device_id="truck-99", store=impostor).seal(reading(), stream=STREAM)
    assert verify_record(unknown, identities=identities).status is Status.FOREIGN_CERTIFICATE


def test_encrypted_records(
    make_sealer: Callable[..., JoseSealer],
    identities: dict[str, ec.EllipticCurvePublicKey],
    recipients: dict[str, ec.EllipticCurvePrivateKey],
) -> None:
    sealed = make_sealer().seal(reading(), stream="truck/camera/objects")
    verdict = verify_record(sealed, identities=identities, recipient_keys=[recipients["city"]])
    assert verdict.ok and verdict.encrypted
    stranger = ec.generate_private_key(ec.SECP256R1())
    assert (
        verify_record(sealed, identities=identities, recipient_keys=[stranger]).status
        is Status.NOT_FOR_RECIPIENT
    )
    assert verify_record(sealed, identities=identities).status is Status.NOT_FOR_RECIPIENT
    document = json.loads(sealed)
    document["ciphertext"] = b64(bytes(len(base64.urlsafe_b64decode(document["ciphertext"] + "=="))))
    altered = json.dumps(document)
    assert (
        verify_record(altered, identities=identities, recipient_keys=[recipients["city"]]).status
        is Status.INVALID
    )


@pytest.mark.parametrize("cut", [5, 40, -30, -1])
def test_truncated_tokens(
    cut: int, make_sealer: Callable[..., JoseSealer], identities: dict[str, ec.EllipticCurvePublicKey]
) -> None:
    token = make_sealer(embed_certificate=False).seal(reading(), stream=STREAM)
    assert verify_record(token[:cut], identities=identities).status is Status.TRUNCATED


def test_truncated_encrypted_and_garbage_never_raise(
    make_sealer: Callable[..., JoseSealer],
    identities: dict[str, ec.EllipticCurvePublicKey],
    recipients: dict[str, ec.EllipticCurvePrivateKey],
) -> None:
    sealed = make_sealer().seal(reading(), stream="truck/camera/objects")
    keys = [recipients["city"]]
    assert (
        verify_record(sealed[: len(sealed) // 2], identities=identities, recipient_keys=keys).status
        is Status.TRUNCATED
    )
    for garbage in (b"", b"\xff\xfe", b"a.b.c", b"{}", b"[1]", "é.é.é"):
        assert not verify_record(garbage, identities=identities, recipient_keys=keys).ok


def test_certificate_from_the_meta_when_not_embedded(
    make_sealer: Callable[..., JoseSealer], identities: dict[str, ec.EllipticCurvePublicKey]
) -> None:
    sealer = make_sealer(embed_certificate=False)
    token = sealer.seal(reading(), stream=STREAM)
    assert verify_record(token, identities=identities).status is Status.FOREIGN_CERTIFICATE
    kid = sealer.signer.epoch(sealer.clock()).kid
    assert verify_record(token, identities=identities, certificates={kid: sealer.certificate}).ok
