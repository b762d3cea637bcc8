"""SecurityPolicy end to end: every scheme against a live loopback IdP, challenges, rate limiting,
legacy sessions, and that no credential ever shows in a message or a log record."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any

import pytest

from agent.security import passwords
from agent.security.access import ANONYMOUS, Operation, Unauthenticated
from agent.security.config import SecuritySection
from agent.security.passwords import hash_password
from agent.security.policy import IdPUnavailable, RateLimited, SecurityPolicy
from tests.security.conftest import AUDIENCE, CLIENT_ID, CLIENT_SECRET, FakeClock, IdP, ec_key

TECH_PASSWORD = "depot-pass-4711"
HASH = hash_password(TECH_PASSWORD, log2_n=10)
BEARER = 'Bearer realm="msec"'
BASIC = 'Basic realm="msec", charset="UTF-8"'


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def section(idp: IdP | None = None, **overrides: Any) -> SecuritySection:
    document: dict[str, Any] = {
        "users": [{"name": "tech", "password_hash": HASH, "roles": ["technician"]}],
        "sessions": {"enabled": True, "ttl": 600.0},
        "login_limit": {"max_failures": 3, "window": 60.0, "lockout": 300.0},
        "rules": [
            {"roles": ["technician", "operator"], "operations": ["*"]},
            {"roles": ["anonymous"], "operations": ["DESCRIBE"], "provider": "public"},
        ],
    }
    if idp is not None:
        document["oidc"] = {
            "discovery_url": idp.discovery_url,
            "audiences": [AUDIENCE],
            "allow_plain_http": True,
            "http_timeout": 2.0,
            "password_grant": True,
            "client_id": CLIENT_ID,
            "client_secret": "env:MSEC_IDP_SECRET",
        }
    document.update(overrides)
    return SecuritySection.model_validate(document)


@pytest.fixture
def policy(idp: IdP, clock: FakeClock) -> SecurityPolicy:
    return SecurityPolicy(section(idp), client_secret=CLIENT_SECRET, clock=clock)


def refused(
    call: Callable[[], object], match: str, kind: type[Unauthenticated] = Unauthenticated
) -> Unauthenticated:
    with pytest.raises(kind, match=match) as caught:
        call()
    return caught.value


# -- no credentials, anonymous ------------------------------------------------------------------------


def test_no_credentials_get_one_challenge_per_scheme(policy: SecurityPolicy) -> None:
    error = refused(lambda: policy.authenticate({}), "authentication required")
    assert error.challenges == (BEARER, BASIC)


def test_only_configured_schemes_are_challenged(clock: FakeClock) -> None:
    local_only = SecurityPolicy(section(), clock=clock)
    assert refused(lambda: local_only.authenticate({}), "required").challenges == (BASIC,)
    error = refused(lambda: local_only.authenticate(bearer("a.b.c")), "unsupported")
    assert error.challenges == (BASIC,)


def test_anonymous_access_when_switched_on(idp: IdP, clock: FakeClock) -> None:
    policy = SecurityPolicy(section(idp, allow_anonymous=True), clock=clock)
    principal = policy.authenticate({})
    assert principal is ANONYMOUS
    assert policy.allowed(principal, Operation.DESCRIBE, "public")
    assert not policy.allowed(principal, Operation.READ, "public", "s", "r")
    # Bad credentials are refused, never downgraded to anonymous.
    refused(lambda: policy.authenticate(basic("tech", "wrong")), "invalid user name or password")


# -- bearer -------------------------------------------------------------------------------------------


def test_a_valid_bearer_token(policy: SecurityPolicy, idp: IdP) -> None:
    principal = policy.authenticate({"authorization": f"bearer {idp.token()}"})  # names are case-insensitive
    assert (principal.name, principal.via) == ("2c1d6f0e-user", "bearer")
    assert principal.roles == {"operator", "msec-agent:reader"}
    assert policy.allowed(principal, Operation.ACT, "truck-1", "lights", "turn_on")


def test_an_invalid_bearer_token_gets_an_rfc6750_challenge(policy: SecurityPolicy, idp: IdP) -> None:
    error = refused(lambda: policy.authenticate(bearer(idp.token(aud="account"))), "audience")
    assert error.challenges[0].startswith('Bearer realm="msec", error="invalid_token", error_description="')
    assert error.challenges[1] == BASIC


def test_bearer_with_the_idp_down_and_no_keys_is_a_503(policy: SecurityPolicy, idp: IdP) -> None:
    token = idp.token()
    idp.stop()
    refused(lambda: policy.authenticate(bearer(token)), "unreachable", IdPUnavailable)


# -- basic: local users -------------------------------------------------------------------------------


def test_basic_with_a_local_user(policy: SecurityPolicy) -> None:
    principal = policy.authenticate(basic("tech", TECH_PASSWORD), remote_addr="10.0.0.9")
    assert (principal.name, principal.roles, principal.via) == ("tech", {"technician"}, "basic")


def test_wrong_password_and_unknown_user_look_the_same(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = SecurityPolicy(section(), clock=clock)
    derived: list[str] = []
    original = passwords.ScryptHash.derive
    monkeypatch.setattr(
        passwords.ScryptHash,
        "derive",
        lambda self, password: derived.append("scrypt") or original(self, password),
    )
    messages = []
    for user in ("tech", "nobody"):
        derived.clear()
        error = refused(
            lambda user=user: policy.authenticate(basic(user, "wrong"), remote_addr=user), "invalid"
        )
        messages.append((str(error), error.challenges))
        assert derived == ["scrypt"]  # one scrypt check each: no early return for an unknown name
    assert messages[0] == messages[1]


@pytest.mark.parametrize(
    "value",
    [
        "Basic",
        "Basic !!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Basic " + base64.b64encode(b":empty-user").decode(),
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
        "Basic " + "A" * 5000,
    ],
)
def test_malformed_basic_is_refused(policy: SecurityPolicy, value: str) -> None:
    refused(lambda: policy.authenticate({"Authorization": value}), "invalid user name or password")


@pytest.mark.parametrize("value", ["Digest username=x", "Negotiate abc", "token-without-scheme", ""])
def test_other_schemes_are_refused(policy: SecurityPolicy, value: str) -> None:
    refused(lambda: policy.authenticate({"Authorization": value}), "unsupported or malformed")


def test_failed_logins_are_limited_per_source(policy: SecurityPolicy, clock: FakeClock) -> None:
    for _ in range(3):
        refused(lambda: policy.authenticate(basic("tech", "guess"), remote_addr="10.0.0.66"), "invalid")
    error = refused(
        lambda: policy.authenticate(basic("tech", TECH_PASSWORD), remote_addr="10.0.0.66"),
        "too many",
        RateLimited,
    )
    assert isinstance(error, RateLimited) and error.retry_after == 300 and error.challenges
    assert policy.authenticate(basic("tech", TECH_PASSWORD), remote_addr="10.0.0.7").name == "tech"
    clock.advance(300)
    assert policy.authenticate(basic("tech", TECH_PASSWORD), remote_addr="10.0.0.66").name == "tech"


# -- basic: the IdP's password grant ------------------------------------------------------------------


def test_password_grant_for_users_the_device_does_not_know(policy: SecurityPolicy, idp: IdP) -> None:
    principal = policy.authenticate(basic("keycloak-user", "correct horse battery"))
    assert (principal.name, principal.via) == ("id-keycloak-user", "basic")
    assert principal.roles == {"operator", "msec-agent:reader"}
    form = idp.token_requests[-1]
    assert form["grant_type"] == ["password"] and form["scope"] == ["openid"] and "client_secret" not in form


def test_password_grant_with_a_wrong_password_counts_as_a_failure(policy: SecurityPolicy) -> None:
    for _ in range(3):
        refused(lambda: policy.authenticate(basic("keycloak-user", "wrong"), remote_addr="x"), "invalid")
    refused(
        lambda: policy.authenticate(basic("keycloak-user", "wrong"), remote_addr="x"), "too many", RateLimited
    )


def test_local_users_do_not_fall_through_to_the_idp(policy: SecurityPolicy, idp: IdP) -> None:
    refused(lambda: policy.authenticate(basic("tech", "correct horse battery")), "invalid")
    assert idp.token_requests == []


def test_password_grant_with_the_idp_down(policy: SecurityPolicy, idp: IdP) -> None:
    idp.stop()
    refused(
        lambda: policy.authenticate(basic("keycloak-user", "correct horse battery")),
        "unreachable",
        IdPUnavailable,
    )


def test_password_grant_with_a_wrong_client_secret(idp: IdP, clock: FakeClock) -> None:
    policy = SecurityPolicy(section(idp), client_secret="not-the-secret", clock=clock)
    refused(lambda: policy.authenticate(basic("keycloak-user", "correct horse battery")), "invalid")


# -- legacy sessions ----------------------------------------------------------------------------------


def test_login_then_x_auth_token_until_expiry(policy: SecurityPolicy, clock: FakeClock) -> None:
    issued = policy.login(basic("tech", TECH_PASSWORD))
    assert issued.valid_until == clock.now + 600
    principal = policy.authenticate({"X-Auth-Token": issued.token})
    assert (principal.name, principal.roles, principal.via) == ("tech", {"technician"}, "token")
    clock.advance(600)
    refused(lambda: policy.authenticate({"x-auth-token": issued.token}), "unknown or expired session token")


def test_a_bearer_session_ends_with_its_token(policy: SecurityPolicy, idp: IdP, clock: FakeClock) -> None:
    issued = policy.login(bearer(idp.token(exp=int(clock.now) + 120)))
    assert issued.valid_until == clock.now + 120
    assert policy.authenticate({"X-Auth-Token": issued.token}).name == "2c1d6f0e-user"
    assert policy.logout(issued.token)
    refused(lambda: policy.authenticate({"X-Auth-Token": issued.token}), "unknown")


def test_login_needs_good_credentials_and_enabled_sessions(
    policy: SecurityPolicy, idp: IdP, clock: FakeClock
) -> None:
    refused(lambda: policy.login({}), "credentials required")
    refused(lambda: policy.login(basic("tech", "wrong")), "invalid")
    issued = policy.login(basic("tech", TECH_PASSWORD))
    refused(lambda: policy.login({"X-Auth-Token": issued.token}), "credentials required")
    # The Authorization header wins over a session token.
    refused(lambda: policy.authenticate({"X-Auth-Token": issued.token, **basic("tech", "x")}), "invalid")
    without = SecurityPolicy(section(idp, sessions={"enabled": False}), clock=clock)
    assert not without.sessions_enabled
    refused(lambda: without.login(basic("tech", TECH_PASSWORD)), "not enabled")
    refused(lambda: without.authenticate({"X-Auth-Token": issued.token}), "authentication required")


# -- no credential in messages or logs ----------------------------------------------------------------


def test_no_credential_appears_in_any_message_or_log_record(
    policy: SecurityPolicy, idp: IdP, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good = idp.token()
    secrets = {
        "expired": idp.token(exp=int(idp.clock.now) - 100),
        "foreign": idp.token(ec_key("foreign")),
        "audience": idp.token(aud="account"),
        "garbage": "Zm9vYmFy" * 10,
        "bad-password": "hunter2-wrong-pass",
        "grant-password": "kc-wrong-password-77",
        "typed-as-user": "my-password-as-user",
        "session": "session-token-guess-abcdef",
        "client": CLIENT_SECRET,
        "good": good,
        "local": TECH_PASSWORD,
    }
    attempts: list[dict[str, str]] = [
        bearer(secrets["expired"]),
        bearer(secrets["foreign"]),
        bearer(secrets["audience"]),
        bearer(secrets["garbage"]),
        {"Authorization": secrets["garbage"]},
        {"Authorization": f"{secrets['typed-as-user']} x"},
        basic("tech", secrets["bad-password"]),
        basic("keycloak-user", secrets["grant-password"]),
        basic(secrets["typed-as-user"], "x"),
        {"X-Auth-Token": secrets["session"]},
    ]
    texts: list[str] = []
    for headers in attempts:
        with pytest.raises(Unauthenticated) as caught:
            policy.authenticate(headers, remote_addr="192.0.2.1")
        texts += [str(caught.value), repr(caught.value), *caught.value.challenges]
    policy.authenticate(bearer(good))
    policy.login(basic("tech", TECH_PASSWORD))
    idp.stop()
    with pytest.raises(IdPUnavailable) as down:
        policy.authenticate(basic("keycloak-user", "correct horse battery"))
    texts.append(str(down.value))
    texts += [record.getMessage() for record in caplog.records]
    encoded = [base64.b64encode(f"tech:{value}".encode()).decode() for value in secrets.values()]
    for text in texts:
        for secret in [*secrets.values(), *encoded, "correct horse battery"]:
            assert secret not in text
    assert any("192.0.2.1" in text for text in texts)  # failures are logged, with their source
