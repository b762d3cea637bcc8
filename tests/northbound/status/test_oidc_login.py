"""The page's "Sign in with <IdP>" over real HTTP: a real agent, the loopback IdP, and every refusal landing
on the login page with a clear message (never a trace)."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from tests.security.conftest import CLIENT_SECRET, IdP

from .conftest import CALLBACK
from .test_app import Client

BEACON_ON = {"provider": "truck", "service": "beacon", "resource": "switch", "params": {"on": True}}


def at_idp(url: str) -> str:
    """The browser at the IdP, which signs the fixed user in (or refuses) and redirects back: the path and
    query of the callback on the agent."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.build_opener(NoRedirect).open(url, timeout=5)
    assert answer.value.code == 302
    parts = urllib.parse.urlsplit(answer.value.headers["Location"])
    return f"{parts.path}?{parts.query}"


def start_sign_in(client: Client) -> str:
    status, headers, _ = client.request("GET", "/status/login/oidc")
    assert status == 303, status
    return headers["Location"]


def sign_in(client: Client) -> tuple[int, bytes]:
    status, _, body = client.request("GET", at_idp(start_sign_in(client)))
    return status, body


def shown_error(body: bytes) -> str:
    found = re.search(rb'data-testid="login-error">([^<]*)<', body)
    assert found, body[:500]
    return found.group(1).decode()


def test_the_login_page_offers_the_idp_and_the_sign_in_makes_a_session(oidc_agent, idp: IdP) -> None:
    runner = oidc_agent()
    client = Client(runner.url)
    _, _, page = client.request("GET", "/login")
    assert f"Sign in with {idp.issuer}".encode() in page

    status, headers, _ = client.request("GET", "/status/login/oidc")
    assert status == 303 and headers["Location"].startswith(idp.authorization_endpoint + "?")
    cookie = headers["Set-Cookie"]
    assert "msec_oidc=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Path=/status/login/oidc" in cookie
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(headers["Location"]).query)
    assert query["redirect_uri"] == [f"{runner.url}{CALLBACK}"]  # as configured

    status, headers, body = client.request("GET", at_idp(headers["Location"]))
    assert status == 200 and b'http-equiv="refresh"' in body and b"/status" in body
    assert {cookie.name for cookie in client.jar} == {"msec_session"}  # the binding cookie is spent

    status, _, page = client.request("GET", "/status")
    assert status == 200 and b"alice (operator)" in page
    # The session is the same a local login makes: the operator may act, with the CSRF token.
    assert client.post_json("/status/act", BEACON_ON, None)[0] == 403  # CSRF still required
    status, answer = client.post_json("/status/act", BEACON_ON, client.page_csrf())
    assert status == 200 and answer == {"result": True}
    assert runner.agent.model.get("truck", "beacon", "on").value is True


def test_roles_are_mapped_as_for_the_rest_facade(oidc_agent, idp: IdP) -> None:
    # "operator" only as a client role is "msec-agent:operator" to the facade: not the operator role.
    idp.signed_in = {
        "sub": "id-vera",
        "preferred_username": "vera",
        "realm_access": {"roles": ["technician"]},
        "resource_access": {"msec-agent": {"roles": ["operator"]}},
    }
    client = Client(oidc_agent().url)
    assert sign_in(client)[0] == 200
    _, _, page = client.request("GET", "/status")
    assert b"vera (viewer)" in page
    assert client.post_json("/status/act", BEACON_ON, client.page_csrf())[0] == 403


def refused(client: Client, path: str, status: int) -> str:
    code, _, body = client.request("GET", path)
    assert code == status, body[:300]
    assert b"Traceback" not in body and b"eyJ" not in body
    _, _, page = client.request("GET", "/status")
    assert b"(operator)" not in page  # not logged in
    return shown_error(body)


def test_a_denied_sign_in_lands_on_the_login_page(oidc_agent, idp: IdP) -> None:
    client = Client(oidc_agent().url)
    idp.deny = "access_denied"
    message = refused(client, at_idp(start_sign_in(client)), 401)
    assert message == "The identity provider did not sign you in (access_denied)."


def test_a_forged_or_replayed_callback_is_refused(oidc_agent) -> None:
    client = Client(oidc_agent().url)
    callback = at_idp(start_sign_in(client))
    stranger = Client(client.base)  # another browser: no binding cookie
    assert "not started in this browser" in refused(stranger, callback, 401)
    assert "expired" in refused(client, callback, 401)  # spent by the stranger's attempt

    callback = at_idp(start_sign_in(client))
    assert client.request("GET", callback)[0] == 200
    client.request("POST", "/logout", b"", {"X-CSRF-Token": client.page_csrf()})
    assert "expired" in refused(client, callback, 401)  # a replay


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?state=x&code=y",
        "?state=%ff%fe&code=%00",
        "?state=" + "a" * 5000 + "&code=" + "b" * 5000,
        "?error=%3Cscript%3Ealert(1)%3C/script%3E",
        "?state=a&state=b&code=c&code=d",
    ],
)
def test_garbage_callbacks_are_refused_cleanly(oidc_agent, query: str) -> None:
    client = Client(oidc_agent().url)
    start_sign_in(client)
    message = refused(client, CALLBACK + query, 401)
    assert "<script>" not in message


def test_a_wrong_nonce_or_an_expired_id_token_is_refused(oidc_agent, idp: IdP) -> None:
    client = Client(oidc_agent().url)
    idp.id_token_overrides = {"nonce": "another"}
    assert "nonce" in refused(client, at_idp(start_sign_in(client)), 401)
    idp.id_token_overrides = {"exp": int(time.time()) - 3600}
    assert "expired" in refused(client, at_idp(start_sign_in(client)), 401)


def test_an_idp_that_is_down_is_said_so(oidc_agent, idp: IdP) -> None:
    client = Client(oidc_agent().url)
    callback = at_idp(start_sign_in(client))
    idp.stop()
    assert "cannot be reached" in refused(client, callback, 503)


def test_a_sign_in_cannot_start_while_the_idp_was_never_reached(oidc_agent, idp: IdP) -> None:
    idp.stop()
    client = Client(oidc_agent().url)
    assert "cannot be reached" in refused(client, "/status/login/oidc", 503)


def test_without_oidc_login_there_is_no_sign_in(status_agent) -> None:
    client = Client(status_agent().url)
    _, _, page = client.request("GET", "/login")
    assert b"Sign in with" not in page
    assert client.request("GET", "/status/login/oidc")[0] == 404


def test_oidc_login_without_an_oidc_provider_is_a_config_error(run_agent) -> None:
    from agent.core.config import ConfigError

    from .conftest import status_toml

    keys = f'oidc_login = true\noidc_redirect_uri = "https://truck.example{CALLBACK}"\n'
    with pytest.raises(ConfigError, match=r"status\.oidc_login"):
        run_agent(status_toml(status_keys=keys), http=True)


def test_the_client_secret_never_reaches_the_page_or_the_browser(oidc_agent, idp: IdP) -> None:
    client = Client(oidc_agent().url)
    _, headers, _ = client.request("GET", "/status/login/oidc")
    assert CLIENT_SECRET not in json.dumps(headers)
    _, _, body = client.request("GET", at_idp(headers["Location"]))
    _, _, page = client.request("GET", "/status")
    assert CLIENT_SECRET.encode() not in body + page
