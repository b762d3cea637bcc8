"""JoseSealer output, checked with stock JOSE libraries only (jwcrypto: an independent implementation)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwcrypto import jwe as cjwe
from jwcrypto import jwk as cjwk
from jwcrypto import jws as cjws

from agent.security.keystore import Keystore, KeystoreConfig, open_keystore
from agent.security.sealer import Sealer
from agent.security.sealing import JoseSealer, SealingConfig, load_public_key
from agent.security.sealing.sequence import SequenceCounter

from .conftest import Clock, reading


def jwk_of(key: ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey) -> cjwk.JWK:
    return cjwk.JWK.from_pyca(key)


def verify_stock(token: str, key: ec.EllipticCurvePublicKey) -> tuple[dict, dict]:
    """What a consumer writes: verify a compact JWS with the key, return (protected header, payload)."""
    message = cjws.JWS()
    message.deserialize(token)
    message.verify(jwk_of(key), alg="ES256")
    return message.jose_header, json.loads(message.payload)


def test_signed_record_verifies_back_to_the_identity_key(
    make_sealer: Callable[..., JoseSealer], keystore: Keystore
) -> None:
    sealer: Sealer = make_sealer()  # the publishers' protocol
    token = sealer.seal(reading(), stream="truck/env/temperature").decode()

    unverified = json.loads(cjws.base64url_decode(token.split(".")[0]))
    cert_header, cert = verify_stock(unverified["kcrt"], keystore.identity_public_key())  # TPM-made link
    signing_key = cjwk.JWK(**cert["jwk"])
    message = cjws.JWS()
    message.deserialize(token)
    message.verify(signing_key, alg="ES256")  # record link
    claims = json.loads(message.payload)
    assert claims["dev"] == cert["iss"] == "truck-7"
    assert claims["stream"] == "truck/env/temperature" and claims["seq"] == 1
    assert claims["rec"] == json.loads(reading())
    assert cert["nbf"] <= claims["iat"] <= cert["exp"]
    assert cert_header["typ"] == "msec-key-cert+jwt"
    assert unverified["kid"] == cert["kid"] == signing_key.thumbprint()


def test_encrypted_record_decrypts_for_each_recipient(
    make_sealer: Callable[..., JoseSealer], recipients: dict[str, ec.EllipticCurvePrivateKey]
) -> None:
    sealed = make_sealer().seal(reading(b'"frame-7"'.decode()), stream="truck/camera/objects")
    document = json.loads(sealed)
    assert len(document["recipients"]) == 2
    for private in recipients.values():
        message = cjwe.JWE()
        message.deserialize(sealed.decode(), key=jwk_of(private))
        assert message.payload.decode().count(".") == 2  # the signed record inside
    outsider = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(cjwe.InvalidJWEData):
        cjwe.JWE().deserialize(sealed.decode(), key=jwk_of(outsider))


def test_policy_per_stream_and_flags(make_sealer: Callable[..., JoseSealer]) -> None:
    sealer = make_sealer(default="plain", rules=[{"match": "truck/gps/*", "policy": "signed"}])
    assert sealer.seal(reading(), stream="truck/env/temperature") == reading()
    assert sealer.seal(reading(), stream="truck/gps/position").count(b".") == 2
    assert (sealer.signed, sealer.encrypted) == (False, False)
    assert make_sealer().signed is True


def test_one_identity_signature_per_rotation(
    make_sealer: Callable[..., JoseSealer], keystore: Keystore, clock: Clock
) -> None:
    sealer = make_sealer()
    start = keystore.operations
    for _ in range(1000):
        sealer.seal(reading(), stream="truck/env/temperature")
    assert keystore.operations == start
    first = sealer.certificate
    published = []
    sealer.signer.on_rotate.append(published.append)
    clock.now += 3600
    sealer.seal(reading(), stream="truck/env/temperature")
    assert (
        keystore.operations == start + 1 and sealer.certificate != first and published == [sealer.certificate]
    )


def test_sequence_numbers_never_repeat_after_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "seq.json"
    first = SequenceCounter(path, block=10)
    handed = [first.next("a") for _ in range(15)]
    again = SequenceCounter(path, block=10)  # a crash: the unsaved tail is skipped, not reused
    assert again.next("a") > max(handed)
    assert again.next("b") == 1


def test_non_json_payload_is_refused(make_sealer: Callable[..., JoseSealer]) -> None:
    with pytest.raises(ValueError):
        make_sealer().seal(b"not json", stream="truck/env/temperature")


def test_config_requires_defined_recipients() -> None:
    with pytest.raises(ValueError, match="unknown recipient"):
        SealingConfig.model_validate({"default_recipients": ["nobody"]})
    with pytest.raises(ValueError, match="needs recipients"):
        SealingConfig.model_validate({"default": "signed+encrypted"})


def test_recipient_keys_load_from_pem_or_jwk(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = tmp_path / "r.pem"
    pem.write_bytes(
        key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    jwk = tmp_path / "r.jwk"
    jwk.write_text(jwk_of(key).export_public())
    assert load_public_key(pem) == load_public_key(jwk) == key


def test_end_to_end_with_the_tpm(
    make_sealer: Callable[..., JoseSealer], swtpm: object, tmp_path: Path
) -> None:
    store = open_keystore(KeystoreConfig(tcti=swtpm.tcti), tmp_path / "tpm", create_missing=True)  # type: ignore[attr-defined]
    token = make_sealer(store=store).seal(reading(), stream="truck/env/temperature").decode()
    unverified = json.loads(cjws.base64url_decode(token.split(".")[0]))
    _, cert = verify_stock(unverified["kcrt"], store.identity_public_key())
    verify_stock(token, cjwk.JWK(**cert["jwk"]).get_op_key("verify"))
    store.close()
