"""Bearer token validation against a live loopback IdP: signatures, claims, key rotation, IdP failures."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from agent.security.idp_http import HttpSettings, IdPHttp
from agent.security.jwks import JwksCache, KeysUnavailable
from agent.security.oidc import InvalidToken, TokenValidator, keycloak_roles
from tests.security.conftest import AUDIENCE, CLIENT_ID, IdP, ec_key, rsa_key

CERTS = "/realms/city/protocol/openid-connect/certs"
DISCOVERY = "/realms/city/.well-known/openid-configuration"


def make(idp: IdP, **options: Any) -> tuple[TokenValidator, JwksCache]:
    http = IdPHttp(
        HttpSettings(timeout=2.0, max_bytes=options.pop("max_bytes", 65536), allow_plain_http=True)
    )
    cache = JwksCache(
        http,
        idp.discovery_url,
        ttl=options.pop("ttl", 600.0),
        min_refetch_interval=options.pop("min_refetch_interval", 30.0),
        clock=idp.clock,
        expected_issuer=options.pop("expected_issuer", None),
    )
    validator = TokenValidator(
        cache,
        audiences=options.pop("audiences", [AUDIENCE]),
        algorithms=options.pop("algorithms", ["RS256", "ES256"]),
        leeway=options.pop("leeway", 30.0),
        clock=idp.clock,
        **options,
    )
    return validator, cache


def b64(data: bytes | dict[str, Any]) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def refused(validator: TokenValidator, token: str, reason: str) -> None:
    with pytest.raises(InvalidToken, match=reason) as caught:
        validator.validate(token)
    assert token not in str(caught.value)


# -- good tokens ----------------------------------------------------------------------------------------


def test_rs256_and_es256_tokens_are_accepted_with_keycloak_roles(idp: IdP) -> None:
    validator, _ = make(idp)
    for key in idp.keys:
        identity = validator.validate(idp.token(key))
        assert identity.name == "2c1d6f0e-user"
        assert identity.roles == {"operator", "msec-agent:reader"}
        assert identity.expires_at == idp.clock.now + 300


def test_the_user_name_claim_is_configurable(idp: IdP) -> None:
    validator, _ = make(idp, username_claim="preferred_username")
    assert validator.validate(idp.token()).name == "alice"
    refused(validator, idp.token(preferred_username=None), "user name")


def test_an_audience_list_naming_us_is_accepted(idp: IdP) -> None:
    validator, _ = make(idp)
    assert validator.validate(idp.token(aud=["account", AUDIENCE])).name


def test_keycloak_role_mapping_prefixes_client_roles_and_ignores_junk() -> None:
    claims = {
        "realm_access": {"roles": ["admin", 7, "", None]},
        "resource_access": {
            "msec-agent": {"roles": ["admin", "reader"]},
            "account": {"roles": ["view"]},
            "x": 3,
        },
        "roles": ["legacy"],
    }
    assert keycloak_roles(claims) == {
        "admin",
        "msec-agent:admin",
        "msec-agent:reader",
        "account:view",
        "legacy",
    }
    assert keycloak_roles({"realm_access": "admin", "resource_access": ["x"]}) == frozenset()


# -- claims ---------------------------------------------------------------------------------------------


def test_wrong_issuer_and_audience_are_refused(idp: IdP) -> None:
    validator, _ = make(idp)
    refused(validator, idp.token(iss=idp.base + "/realms/other"), "issuer")
    refused(validator, idp.token(aud="account"), "audience")
    refused(validator, idp.token(aud=None), "audience")
    refused(validator, idp.token(aud=[1, 2]), "audience")


def test_expiry_with_leeway(idp: IdP) -> None:
    validator, _ = make(idp, leeway=30.0)
    token = idp.token(exp=int(idp.clock.now) + 60)
    idp.clock.advance(60 + 29)
    assert validator.validate(token)  # within the leeway
    idp.clock.advance(1)
    refused(validator, token, "expired")
    refused(validator, idp.token(exp=None), "no expiry")
    refused(validator, idp.token(exp="tomorrow"), "not a number")
    refused(validator, idp.token(exp=True), "not a number")


def test_not_before_and_issued_at_in_the_future_are_refused(idp: IdP) -> None:
    validator, _ = make(idp, leeway=30.0)
    now = int(idp.clock.now)
    assert validator.validate(idp.token(nbf=now + 30))
    refused(validator, idp.token(nbf=now + 31), "not valid yet")
    refused(validator, idp.token(iat=now + 31), "issued in the future")


def test_only_access_tokens_with_a_subject_pass(idp: IdP) -> None:
    validator, _ = make(idp)
    refused(validator, idp.token(typ="ID"), "not an access token")
    refused(validator, idp.token(typ="Refresh"), "not an access token")
    refused(validator, idp.token(sub=None), "subject")


# -- signatures and algorithms --------------------------------------------------------------------------


def test_alg_none_is_refused(idp: IdP) -> None:
    validator, _ = make(idp)
    body = b64(idp.claims())
    for signature in ("", "AAAA"):
        refused(
            validator, f"{b64({'alg': 'none', 'kid': 'rsa-1'})}.{body}.{signature}", "compact JWS|algorithm"
        )
    refused(validator, f"{b64({'alg': 'None', 'kid': 'rsa-1'})}.{body}.AAAA", "algorithm")


def test_hs256_signed_with_the_rsa_public_key_is_refused(idp: IdP) -> None:
    validator, _ = make(idp)
    public = idp.keys[0].private.public_key()
    for encoding, form in (
        (serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
        (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
    ):
        secret = public.public_bytes(encoding, form)
        signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': 'rsa-1'})}.{b64(idp.claims())}"
        signature = b64(hmac.new(secret, signing_input.encode(), hashlib.sha256).digest())
        refused(validator, f"{signing_input}.{signature}", "algorithm")


def test_hmac_algorithms_cannot_even_be_configured(idp: IdP) -> None:
    with pytest.raises(ValueError, match="unsupported"):
        make(idp, algorithms=["RS256", "HS256"])


def test_a_key_only_verifies_algorithms_of_its_type(idp: IdP) -> None:
    validator, _ = make(idp)
    ec_signed = idp.token(idp.keys[1], headers={"kid": "rsa-1"})  # ES256 claiming to be checked by RSA
    refused(validator, ec_signed, "does not fit|signature")
    rs_only, _ = make(idp, algorithms=["RS256"])
    refused(rs_only, idp.token(idp.keys[1]), "algorithm is not allowed")


def test_a_tampered_payload_is_refused(idp: IdP) -> None:
    validator, _ = make(idp)
    header, _, signature = idp.token().split(".")
    forged = f"{header}.{b64(idp.claims(realm_access={'roles': ['admin']}))}.{signature}"
    refused(validator, forged, "signature")


@pytest.mark.parametrize(
    "token",
    [
        "garbage",
        "a.b.c",
        "...",
        "!!!.???.***",
        "eyJhbGciOiJSUzI1NiJ9.e30",
        f"{b64(b'not json')}.{b64({})}.AAAA",
        f"{b64(b'[1, 2]')}.{b64({})}.AAAA",
        "a" * 20_000 + ".b.c",
        "a.b.c.d.e",
    ],
)
def test_malformed_tokens_are_refused_without_echo(idp: IdP, token: str) -> None:
    validator, _ = make(idp)
    refused(validator, token, ".")


def test_a_token_without_kid_is_refused(idp: IdP) -> None:
    validator, _ = make(idp)
    key = idp.keys[0]
    import jwt

    token = jwt.encode(idp.claims(), key.private, algorithm="RS256")
    refused(validator, token, "names no key")


# -- keys: rotation, rate limits, IdP failures ----------------------------------------------------------


def test_unknown_kid_refetches_and_picks_up_a_rotated_key(idp: IdP) -> None:
    validator, _ = make(idp, min_refetch_interval=30.0)
    old = idp.keys[0]
    assert validator.validate(idp.token(old))
    assert idp.count(CERTS) == 1
    new = rsa_key("rsa-2")
    idp.keys = [new, idp.keys[1]]  # the IdP rotates: rsa-1 is retired
    idp.clock.advance(31)
    assert validator.validate(idp.token(new)).name
    assert idp.count(CERTS) == 2
    refused(validator, idp.token(old), "not one of the identity provider's keys")


def test_unknown_kid_refetches_are_rate_limited(idp: IdP) -> None:
    validator, _ = make(idp, min_refetch_interval=30.0)
    assert validator.validate(idp.token())
    stranger = ec_key("attacker")
    for number in range(25):
        refused(validator, idp.token(stranger, headers={"kid": f"random-{number}"}), "not one of")
    assert idp.count(CERTS) == 1 and idp.count(DISCOVERY) == 1
    idp.clock.advance(30)
    refused(validator, idp.token(stranger, headers={"kid": "random-again"}), "not one of")
    refused(validator, idp.token(stranger, headers={"kid": "random-again"}), "not one of")
    assert idp.count(CERTS) == 2


def test_keys_are_refreshed_after_their_ttl(idp: IdP) -> None:
    validator, _ = make(idp, ttl=600.0)
    assert validator.validate(idp.token())
    idp.clock.advance(599)
    assert validator.validate(idp.token())
    assert idp.count(CERTS) == 1
    idp.clock.advance(1)
    assert validator.validate(idp.token())
    assert idp.count(CERTS) == 2


def test_cached_keys_keep_working_while_the_idp_is_down(idp: IdP, caplog: pytest.LogCaptureFixture) -> None:
    validator, cache = make(idp, ttl=600.0)
    assert validator.validate(idp.token())
    idp.stop()
    idp.clock.advance(3600)  # long past the TTL: a refresh is tried and fails
    token = idp.token(exp=int(idp.clock.now) + 300, iat=int(idp.clock.now), nbf=int(idp.clock.now))
    assert validator.validate(token).name
    assert cache.fetches == 2
    assert "keeping 2 cached key(s)" in caplog.text
    refused(validator, idp.token(ec_key("new"), exp=int(idp.clock.now) + 300), "not one of")


def test_with_no_keys_and_the_idp_down_bearer_fails_closed(idp: IdP) -> None:
    validator, cache = make(idp)
    token = idp.token()
    idp.stop()
    with pytest.raises(KeysUnavailable, match="could not be fetched"):
        validator.validate(token)
    with pytest.raises(KeysUnavailable):  # within the rate limit: not even tried again
        validator.validate(token)
    assert cache.fetches == 1


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (CERTS, b"<html>Bad gateway</html>"),
        (CERTS, b'{"keys": "none"}'),
        (CERTS, b'{"keys": [{"kty": "oct", "kid": "rsa-1", "k": "c2VjcmV0"}]}'),
        (CERTS, b'{"keys": [{"kty": "RSA", "kid": "rsa-1", "n": "!!", "e": "AQAB"}, 5, null]}'),
        (CERTS, b'{"keys": [' + b"1," * 40_000 + b"1]}"),  # over the size limit
        (CERTS, b"[" * 30_000 + b"]" * 30_000),  # nested past the recursion limit
        (DISCOVERY, b'{"issuer": "https://evil.example/realms/city", "jwks_uri": "https://evil.example/c"}'),
        (DISCOVERY, b'{"issuer": 5}'),
        (DISCOVERY, b"null"),
    ],
)
def test_an_idp_answering_garbage_yields_no_keys(idp: IdP, path: str, body: bytes) -> None:
    validator, _ = make(idp)
    idp.override[path] = (200, body, "application/json")
    with pytest.raises(KeysUnavailable):
        validator.validate(idp.token())


def test_garbage_after_good_keys_keeps_the_good_keys(idp: IdP) -> None:
    validator, _ = make(idp, ttl=600.0)
    assert validator.validate(idp.token())
    idp.override[CERTS] = (200, b'{"keys": []}', "application/json")
    idp.clock.advance(601)
    assert validator.validate(idp.token())
    assert idp.count(CERTS) == 2


def test_a_configured_issuer_must_match_the_discovery_document(idp: IdP) -> None:
    validator, _ = make(idp, expected_issuer="https://idp.example/realms/city")
    with pytest.raises(KeysUnavailable):
        validator.validate(idp.token())


def test_an_http_error_status_yields_no_keys(idp: IdP) -> None:
    validator, _ = make(idp)
    idp.override[DISCOVERY] = (503, b'{"error": "down"}', "application/json")
    with pytest.raises(KeysUnavailable):
        validator.validate(idp.token())


def test_an_id_token_is_checked_for_our_client_and_the_sign_ins_nonce(idp: IdP) -> None:
    validator, _ = make(idp)
    good = {"aud": CLIENT_ID, "azp": CLIENT_ID, "typ": "ID", "nonce": "n-1"}
    identity = validator.validate_id_token(idp.token(**good), client_id=CLIENT_ID, nonce="n-1")
    assert identity.name == "2c1d6f0e-user"
    for claims, reason in [
        ({"nonce": "n-2"}, "nonce does not match"),
        ({"nonce": None}, "nonce does not match"),
        ({"nonce": 1}, "nonce does not match"),
        ({"aud": "other"}, "audience"),
        ({"azp": "other"}, "azp"),
        ({"typ": "Bearer"}, "not an ID token"),
        ({"typ": "Refresh"}, "not an ID token"),
        ({"exp": int(idp.clock.now) - 3600}, "expired"),
    ]:
        with pytest.raises(InvalidToken, match=reason):
            validator.validate_id_token(idp.token(**{**good, **claims}), client_id=CLIENT_ID, nonce="n-1")


def test_an_id_token_is_no_access_token(idp: IdP) -> None:
    validator, _ = make(idp)
    refused(validator, idp.token(typ="ID"), "not an access token")
