"""The facade guarded by the real security policy, against a real OIDC provider on loopback: bearer
tokens signed by keys the IdP publishes (rotated mid-test), Keycloak roles, Basic, legacy tokens."""

# ruff: noqa: F811  (pytest fixtures imported from the security suite are named again as parameters)
from __future__ import annotations

import base64
from typing import Any

import pytest

from agent.security.config import SecuritySection
from agent.security.passwords import hash_password
from agent.security.policy import SecurityPolicy
from tests.security.conftest import AUDIENCE, IdP, clock, ec_key, idp  # noqa: F401  (fixtures)

LIGHT = "/sensinact/providers/light/services/switch/resources/status"


@pytest.fixture
def guarded(serve_facade: Any, idp: IdP) -> Any:
    section = SecuritySection.model_validate(
        {
            "oidc": {
                "discovery_url": idp.discovery_url,
                "audiences": [AUDIENCE],
                "allow_plain_http": True,
                "min_refetch_interval": 1.0,
            },
            "users": [
                {
                    "name": "tech",
                    "password_hash": hash_password("tech-pass", log2_n=10),
                    "roles": ["technician"],
                }
            ],
            "sessions": {"enabled": True},
            "rules": [
                {"roles": ["operator"], "operations": ["*"]},
                {
                    "roles": ["msec-agent:reader", "technician"],
                    "operations": ["DESCRIBE", "READ"],
                    "provider": "light",
                },
            ],
        }
    )
    return serve_facade(SecurityPolicy(section, clock=idp.clock))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_no_credentials_is_401_with_a_challenge_per_scheme(guarded: Any) -> None:
    status, headers, body = guarded.client.request("GET", LIGHT + "/GET")
    assert status == 401 and body["type"] == "ERROR"
    challenges = " ".join(v for k, v in headers.items() if k.lower() == "www-authenticate")
    assert "Bearer" in challenges and "Basic" in challenges


def test_keycloak_roles_decide_what_a_token_may_do(guarded: Any, idp: IdP) -> None:
    operator = bearer(idp.token())  # realm role operator
    status, _, body = guarded.client.request("GET", LIGHT + "/GET", headers=operator)
    assert status == 200 and body["response"]["value"] == "OFF"
    status, _, _ = guarded.client.request(
        "POST", LIGHT + "/SET", [{"name": "value", "value": "ON"}], headers=operator
    )
    assert status == 200 and guarded.model.get("light", "switch", "status").value == "ON"

    reader = bearer(idp.token(realm_access={"roles": []}))  # only the client role msec-agent:reader
    assert guarded.client.request("GET", LIGHT + "/GET", headers=reader)[0] == 200
    status, _, _ = guarded.client.request(
        "POST", LIGHT + "/SET", [{"name": "value", "value": "OFF"}], headers=reader
    )
    assert status == 403
    status, _, body = guarded.client.request("GET", "/sensinact/providers", headers=reader)
    assert status == 200 and body["providers"] == ["light"]  # what it may not DESCRIBE is not listed
    assert guarded.client.request("GET", "/sensinact/providers/depot", headers=reader)[0] == 403


def test_rotated_signing_key_is_picked_up_and_bad_tokens_refused(guarded: Any, idp: IdP) -> None:
    assert guarded.client.request("GET", LIGHT + "/GET", headers=bearer(idp.token()))[0] == 200
    rotated = ec_key("ec-rotated")
    idp.keys = [rotated]  # the IdP rotates its keys mid-test
    idp.clock.advance(2)
    assert guarded.client.request("GET", LIGHT + "/GET", headers=bearer(idp.token(rotated)))[0] == 200

    expired = idp.token(rotated, exp=int(idp.clock.now) - 3600)
    status, headers, _ = guarded.client.request("GET", LIGHT + "/GET", headers=bearer(expired))
    assert status == 401 and "invalid_token" in headers.get("WWW-Authenticate", "")
    wrong_audience = idp.token(rotated, aud="someone-else")
    assert guarded.client.request("GET", LIGHT + "/GET", headers=bearer(wrong_audience))[0] == 401


def test_basic_and_the_legacy_login_token(guarded: Any) -> None:
    assert guarded.client.request("GET", LIGHT + "/GET", headers=basic("tech", "tech-pass"))[0] == 200
    assert guarded.client.request("GET", LIGHT + "/GET", headers=basic("tech", "wrong"))[0] == 401
    status, _, body = guarded.client.request(
        "POST", "/sensinact.login", {}, headers=basic("tech", "tech-pass")
    )
    assert status == 200 and body["token"]
    token = {"X-Auth-Token": body["token"]}
    assert guarded.client.request("GET", LIGHT + "/GET", headers=token)[0] == 200
    assert guarded.client.request("GET", "/sensinact/providers/depot", headers=token)[0] == 403
