"""The authorization code flow with PKCE against the loopback IdP: a sign-in that works, and every refusal."""

from __future__ import annotations

import base64
import hashlib
import urllib.error
import urllib.parse
import urllib.request

import pytest

from agent.security.authcode import (
    AuthorizationCodeLogin,
    SignInRefused,
    SignInUnavailable,
    authorization_code_login,
)
from agent.security.config import OidcSection

from .conftest import AUDIENCE, CLIENT_ID, CLIENT_SECRET, IdP

REDIRECT = "http://127.0.0.1:8080/status/login/oidc/callback"
BINDING = "browser-binding-value"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def follow(url: str) -> dict[str, str]:
    """What a browser does with the IdP URL: the IdP signs the user in and redirects back; the callback's
    query parameters."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        opener.open(url, timeout=5)
    except urllib.error.HTTPError as answer:
        assert answer.code == 302, answer.read()
        location = answer.headers["Location"]
    else:
        raise AssertionError("the IdP did not redirect")
    assert location.startswith(REDIRECT + "?")
    return {
        name: values[0]
        for name, values in urllib.parse.parse_qs(urllib.parse.urlsplit(location).query).items()
    }


def make_login(idp: IdP, *, secret: str | None = CLIENT_SECRET, **settings) -> AuthorizationCodeLogin:
    section = OidcSection(
        discovery_url=idp.discovery_url,
        audiences=[AUDIENCE],
        allow_plain_http=True,
        client_id=CLIENT_ID,
        username_claim="preferred_username",
        **settings,
    )
    return authorization_code_login(
        section, client_secret=secret, redirect_uri=REDIRECT, clock=idp.clock, ttl=300
    )


@pytest.fixture
def login(idp: IdP) -> AuthorizationCodeLogin:
    return make_login(idp)


def test_a_sign_in_gives_the_access_tokens_identity_and_roles(
    idp: IdP, login: AuthorizationCodeLogin
) -> None:
    url = login.start(BINDING)
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    assert url.startswith(idp.authorization_endpoint + "?")
    assert query["code_challenge_method"] == ["S256"] and query["response_type"] == ["code"]
    assert query["redirect_uri"] == [REDIRECT] and query["client_id"] == [CLIENT_ID]
    assert len(query["state"][0]) >= 32 and len(query["nonce"][0]) >= 32

    identity = login.finish(follow(url), BINDING)

    assert identity.name == "alice"
    assert "operator" in identity.roles and "msec-agent:reader" in identity.roles  # Keycloak's layout
    exchange = idp.token_requests[-1]
    assert exchange["grant_type"] == ["authorization_code"] and exchange["redirect_uri"] == [REDIRECT]
    verifier = exchange["code_verifier"][0]
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert digest == query["code_challenge"][0]  # the verifier never left the device before this
    assert verifier not in url
    assert login.pending == 0


def test_every_sign_in_has_its_own_state_nonce_and_verifier(login: AuthorizationCodeLogin) -> None:
    first, second = (
        urllib.parse.parse_qs(urllib.parse.urlsplit(login.start(BINDING)).query) for _ in range(2)
    )
    for name in ("state", "nonce", "code_challenge"):
        assert first[name] != second[name]


def test_a_public_client_sends_its_id_instead_of_a_secret(idp: IdP) -> None:
    login = make_login(idp, secret=None)
    # The loopback IdP wants the confidential client's secret: a public client is refused as such.
    with pytest.raises(SignInUnavailable, match="client credentials"):
        login.finish(follow(login.start(BINDING)), BINDING)
    assert idp.token_requests[-1]["client_id"] == [CLIENT_ID]


def test_a_state_is_good_for_one_callback(login: AuthorizationCodeLogin) -> None:
    params = follow(login.start(BINDING))
    login.finish(params, BINDING)
    with pytest.raises(SignInRefused, match="expired or was not started"):
        login.finish(params, BINDING)


def test_a_replayed_code_is_refused_by_the_idp(idp: IdP, login: AuthorizationCodeLogin) -> None:
    params = follow(login.start(BINDING))
    login.finish(params, BINDING)
    # A second sign-in whose callback carries the first (redeemed) code, with a fresh valid state.
    fresh = follow(login.start(BINDING))
    with pytest.raises(SignInRefused, match="refused the sign-in code") as refused:
        login.finish({**fresh, "code": params["code"]}, BINDING)
    assert not isinstance(refused.value, SignInUnavailable)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"code": "x"},
        {"state": "made-up", "code": "x"},
        {"state": "", "code": "x"},
        {"state": "s" * 100_000, "code": "x"},
    ],
)
def test_a_callback_with_an_unknown_state_is_refused(login: AuthorizationCodeLogin, params: dict) -> None:
    login.start(BINDING)
    with pytest.raises(SignInRefused, match="expired or was not started"):
        login.finish(params, BINDING)


@pytest.mark.parametrize("binding", [None, "", "another-browser"])
def test_a_state_started_in_another_browser_is_refused(login: AuthorizationCodeLogin, binding) -> None:
    params = follow(login.start(BINDING))
    with pytest.raises(SignInRefused, match="not started in this browser"):
        login.finish(params, binding)
    with pytest.raises(SignInRefused):  # and it is spent: the right browser cannot use it after that
        login.finish(params, BINDING)


def test_a_state_expires(idp: IdP, login: AuthorizationCodeLogin) -> None:
    params = follow(login.start(BINDING))
    idp.clock.advance(301)
    with pytest.raises(SignInRefused, match="expired"):
        login.finish(params, BINDING)
    assert login.pending == 0


def test_pending_sign_ins_are_bounded(idp: IdP) -> None:
    login = make_login(idp)
    login._max_pending = 3
    first = follow(login.start(BINDING))
    for _ in range(3):
        login.start(BINDING)
    assert login.pending == 3
    with pytest.raises(SignInRefused, match="expired"):  # the oldest gave way
        login.finish(first, BINDING)


@pytest.mark.parametrize(
    ("error", "shown"),
    [("access_denied", "(access_denied)"), ("<script>alert(1)</script>", "(an unrecognised error)")],
)
def test_an_error_from_the_idp_is_shown_without_echoing_garbage(
    idp: IdP, login: AuthorizationCodeLogin, error: str, shown: str
) -> None:
    idp.deny = error
    params = follow(login.start(BINDING))
    assert "code" not in params
    with pytest.raises(SignInRefused) as refused:
        login.finish(params, BINDING)
    assert str(refused.value) == f"The identity provider did not sign you in {shown}."
    assert login.pending == 0


def test_a_wrong_nonce_is_refused(idp: IdP, login: AuthorizationCodeLogin) -> None:
    idp.id_token_overrides = {"nonce": "a-nonce-of-another-sign-in"}
    with pytest.raises(SignInRefused, match="nonce does not match"):
        login.finish(follow(login.start(BINDING)), BINDING)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"exp": 1_000}, "expired"),
        ({"nonce": None}, "nonce"),
        ({"aud": "another-client"}, "audience"),
        ({"azp": "another-client"}, "azp"),
        ({"typ": "Bearer"}, "not an ID token"),
        ({"iss": "https://evil.example/realms/city"}, "another issuer"),
        ({"preferred_username": "mallory"}, "tokens disagree"),
    ],
)
def test_an_unacceptable_id_token_is_refused(
    idp: IdP, login: AuthorizationCodeLogin, overrides: dict, reason: str
) -> None:
    idp.id_token_overrides = overrides
    with pytest.raises(SignInRefused, match=reason) as refused:
        login.finish(follow(login.start(BINDING)), BINDING)
    assert "eyJ" not in str(refused.value)  # no token in the message


def test_a_wrong_verifier_is_refused_by_the_idp(idp: IdP, login: AuthorizationCodeLogin) -> None:
    params = follow(login.start(BINDING))
    code = params["code"]
    idp.codes[code]["challenge"] = "a-challenge-an-attacker-sent"
    with pytest.raises(SignInRefused, match="refused the sign-in code"):
        login.finish(params, BINDING)


def test_an_idp_that_is_down_is_said_so(idp: IdP, login: AuthorizationCodeLogin) -> None:
    params = follow(login.start(BINDING))
    idp.stop()
    with pytest.raises(SignInUnavailable, match="cannot be reached"):
        login.finish(params, BINDING)
    with pytest.raises(SignInUnavailable, match="cannot be reached"):
        make_login(idp).start(BINDING)  # a fresh one, nothing discovered yet: it cannot even start


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/token", b"<html>oops</html>"),
        ("/token", b'{"access_token": "x"}'),
        ("/token", b"[1, 2]"),
    ],
)
def test_a_garbage_token_answer_is_refused(
    idp: IdP, login: AuthorizationCodeLogin, path: str, body: bytes
) -> None:
    params = follow(login.start(BINDING))
    idp.override["/realms/city/protocol/openid-connect" + path] = (200, body, "application/json")
    with pytest.raises(SignInUnavailable):
        login.finish(params, BINDING)


def test_a_discovery_without_an_authorization_endpoint_cannot_start(idp: IdP) -> None:
    idp.override[idp.discovery_url.removeprefix(idp.base)] = (
        200,
        f'{{"issuer": "{idp.issuer}", "jwks_uri": "{idp.issuer}/protocol/openid-connect/certs"}}'.encode(),
        "application/json",
    )
    with pytest.raises(SignInUnavailable):
        make_login(idp).start(BINDING)


def test_the_scope_always_asks_for_an_id_token(idp: IdP) -> None:
    login = make_login(idp, scope="profile email")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(login.start(BINDING)).query)
    assert query["scope"] == ["openid profile email"]


def test_a_section_without_client_id_cannot_make_a_sign_in(idp: IdP) -> None:
    section = OidcSection(discovery_url=idp.discovery_url, audiences=[AUDIENCE], allow_plain_http=True)
    with pytest.raises(ValueError, match="client_id"):
        authorization_code_login(section, client_secret=None, redirect_uri=REDIRECT, clock=idp.clock, ttl=60)
