"""The `[status]` table's sign-in keys, tried with garbage: every bad value is a clear error."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agent.northbound.status.config import StatusSection

GOOD = "https://truck-7.depot.example/status/login/oidc/callback"


@pytest.mark.parametrize(
    "uri",
    [
        GOOD,
        "https://truck-7.depot.example:8443/agent/status/login/oidc/callback",  # behind a path prefix
        "http://127.0.0.1:8080/status/login/oidc/callback",
        "http://[::1]:8080/status/login/oidc/callback",
        "http://localhost/status/login/oidc/callback",
    ],
)
def test_a_callback_url_is_accepted(uri: str) -> None:
    assert StatusSection(oidc_login=True, oidc_redirect_uri=uri).oidc_redirect_uri == uri


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("http://truck-7.depot.example/status/login/oidc/callback", "https"),  # plain http off loopback
        ("http://10.0.0.7/status/login/oidc/callback", "https"),
        ("ftp://truck/status/login/oidc/callback", "https"),
        ("javascript:alert(1)//status/login/oidc/callback", "absolute URL"),
        ("/status/login/oidc/callback", "absolute URL"),
        ("https://truck/status/login", "absolute URL"),
        ("https://truck/status/login/oidc/callback?next=/evil", "query"),
        ("https://truck/status/login/oidc/callback#x", "fragment"),
        ("https://user:pw@truck/status/login/oidc/callback", "password"),
        ("https://truck/status/login/oidc/callback\r\nSet-Cookie: x=1", "control"),
        ("https://tr uck/status/login/oidc/callback", "spaces"),
        ("", "absolute URL"),
        ("https://truck/" + "a" * 3000 + "/status/login/oidc/callback", "2048"),
    ],
)
def test_a_bad_callback_url_is_refused(uri: str, why: str) -> None:
    with pytest.raises(ValidationError, match=why):
        StatusSection(oidc_login=True, oidc_redirect_uri=uri)


@pytest.mark.parametrize(
    "keys",
    [
        {"oidc_login": True},  # no callback URL
        {"oidc_login": "yes", "oidc_redirect_uri": GOOD},  # no silent conversion
        {"oidc_redirect_uri": 42},
        {"oidc_login_seconds": 5},
        {"oidc_login_seconds": 86_400},
        {"oidc_login_seconds": "300"},
        {"oidc_login_secs": 300},  # a typo is an error, not ignored
    ],
)
def test_garbage_sign_in_keys_are_refused(keys: dict) -> None:
    with pytest.raises(ValidationError):
        StatusSection(**keys)


def test_the_sign_in_is_off_by_default() -> None:
    section = StatusSection()
    assert section.oidc_login is False and section.oidc_redirect_uri is None
