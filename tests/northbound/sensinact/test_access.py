"""Authentication and authorization through the AccessControl seam (a rule-based stand-in here)."""

from __future__ import annotations

import base64

from agent.security.access import Principal

from .conftest import RuleAccess, TokenAccess

ALICE = Principal("alice", frozenset({"operator"}), via="bearer")
BOB = Principal("bob", via="bearer")


def access(cls=RuleAccess) -> RuleAccess:
    return cls(
        users={"alice-token": ALICE, "bob-token": BOB},
        rules={
            "alice": {("*", "*")},
            # bob sees the light (and the sensiNact provider), may read it, never write or act
            "bob": {("DESCRIBE", "light"), ("READ", "light"), ("DESCRIBE", "sensiNact")},
        },
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_no_credentials_is_401_with_one_challenge_per_scheme(serve_facade) -> None:
    client = serve_facade(access()).client
    for path in ("/sensinact", "/sensinact/light/switch/status/GET"):
        status, headers, body = client.request("GET", path)
        assert status == 401 and body["type"] == "ERROR" and body["statusCode"] == 401
        assert headers.get_all("WWW-Authenticate") == ['Bearer realm="msec"', 'Basic realm="msec"']
    status, _, _ = client.request("GET", "/sensinact", headers=bearer("forged"))
    assert status == 401


def test_hidden_providers_leave_lists_and_direct_access_is_403(serve_facade) -> None:
    client = serve_facade(access()).client
    _, body = client.get("/sensinact/providers", headers=bearer("bob-token"))
    assert set(body["providers"]) == {"light", "sensiNact"}
    _, body = client.get("/sensinact", headers=bearer("bob-token"))
    assert {p["name"] for p in body["providers"]} == {"light", "sensiNact"}
    _, body = client.post("/sensinact/snapshot", headers=bearer("bob-token"))
    assert set(body["providers"]) == {"light"}  # sensiNact: DESCRIBE only, no READ
    for path in (
        "/sensinact/providers/slider",
        "/sensinact/slider/cursor/position/GET",
        "/sensinact/providers/nope",
    ):  # refused before existence is looked at
        status, body = client.get(path, headers=bearer("bob-token"))
        assert status == 403 and body["type"] == "ERROR"
    status, body = client.get("/sensinact/light/switch/status/GET", headers=bearer("bob-token"))
    assert status == 200 and body["response"]["value"] == "OFF"
    _, body = client.get("/sensinact/providers", headers=bearer("alice-token"))
    assert set(body["providers"]) == {"slider", "light", "depot", "sensiNact"}


def test_write_and_act_need_their_permissions(serve_facade) -> None:
    served = serve_facade(access())
    client = served.client
    status, _ = client.post(
        "/sensinact/light/switch/status/SET", [{"value": "ON"}], headers=bearer("bob-token")
    )
    assert status == 403 and served.model.get("light", "switch", "status").value == "OFF"
    status, _ = client.post("/sensinact/light/switch/dim/ACT", [{"value": 1}], headers=bearer("bob-token"))
    assert status == 403
    status, _ = client.post(
        "/sensinact/providers/light", [{"value": {"x/y": 1}}], headers=bearer("bob-token")
    )
    assert status == 403
    status, _ = client.post(
        "/sensinact/light/switch/status/SET", [{"value": "ON"}], headers=bearer("alice-token")
    )
    assert status == 200 and served.model.get("light", "switch", "status").value == "ON"


def test_login_endpoint_is_404_without_a_token_provider(serve_facade) -> None:
    status, body = serve_facade(access()).client.get("/sensinact.login")
    assert status == 404 and body["type"] == "ERROR"


def test_legacy_login_and_x_auth_token(serve_facade) -> None:
    client = serve_facade(access(TokenAccess)).client
    status, headers, body = client.request("POST", "/sensinact.login", headers=bearer("alice-token"))
    assert status == 200 and body["type"] == "TOKEN_CREATION" and body["uri"] == "/login"
    assert body["token"] == headers["X-Auth-Token"] == "tok-alice"
    status, _ = client.get("/sensinact/providers", headers={"X-Auth-Token": "tok-alice"})
    assert status == 200
    status, _ = client.get("/sensinact/providers", headers={"X-Auth-Token": "tok-unknown"})
    assert status == 401
    basic = "Basic " + base64.b64encode(b"mallory:nope").decode()
    status, _, body = client.request("GET", "/sensinact.login", headers={"Authorization": basic})
    assert status == 403 and body["type"] == "ERROR"  # legacy: bad credentials at login are 403
