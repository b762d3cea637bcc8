"""A real OpenID Connect provider on loopback (discovery, JWKS, token endpoint, and an authorization
endpoint that signs a fixed user in without any UI), keys made with `cryptography`, tokens signed by them,
and a clock the tests move by hand."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

AUDIENCE = "msec-agent"
CLIENT_ID = "msec-agent"
CLIENT_SECRET = "client-secret-value-xyz"
NOW = 1_800_000_000.0


class FakeClock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Key:
    kid: str
    alg: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        document = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**document, "kid": self.kid, "use": "sig", "alg": self.alg}


_RSA: list[Any] = []


def rsa_key(kid: str) -> Key:
    # RSA generation is the slow part of these tests; a few keys serve them all.
    if len(_RSA) < 3:
        _RSA.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        return Key(kid, "RS256", _RSA[-1])
    return Key(kid, "RS256", _RSA[hash(kid) % 3])


def ec_key(kid: str) -> Key:
    return Key(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


@dataclass
class IdP:
    """What the loopback IdP publishes; tests change it while it runs."""

    base: str = ""
    keys: list[Key] = field(default_factory=list)
    clock: FakeClock = field(default_factory=FakeClock)
    users: dict[str, str] = field(default_factory=lambda: {"keycloak-user": "correct horse battery"})
    requests: dict[str, int] = field(default_factory=dict)
    # path → (status, body bytes, content type): overrides the normal answer
    override: dict[str, tuple[int, bytes, str]] = field(default_factory=dict)
    token_requests: list[dict[str, list[str]]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None
    # The authorization code flow: the user the authorization endpoint signs in (claims of its tokens),
    # an OAuth error to answer instead (e.g. "access_denied"), claims that override those of the ID token
    # issued for a code, and the codes issued and not yet redeemed.
    signed_in: dict[str, Any] = field(
        default_factory=lambda: {"sub": "2c1d6f0e-user", "preferred_username": "alice"}
    )
    deny: str | None = None
    id_token_overrides: dict[str, Any] = field(default_factory=dict)
    codes: dict[str, dict[str, str]] = field(default_factory=dict)

    def stop(self) -> None:
        """The IdP goes down: its port refuses connections from now on."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def issuer(self) -> str:
        return self.base + "/realms/city"

    @property
    def discovery_url(self) -> str:
        return self.issuer + "/.well-known/openid-configuration"

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(self.clock.now)
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": "2c1d6f0e-user",
            "preferred_username": "alice",
            "exp": now + 300,
            "iat": now,
            "nbf": now,
            "typ": "Bearer",
            "realm_access": {"roles": ["operator"]},
            "resource_access": {"msec-agent": {"roles": ["reader"]}},
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def token(self, key: Key | None = None, *, headers: dict[str, Any] | None = None, **claims: Any) -> str:
        key = key or self.keys[0]
        return jwt.encode(
            self.claims(**claims), key.private, algorithm=key.alg, headers={"kid": key.kid, **(headers or {})}
        )

    def count(self, path: str) -> int:
        return self.requests.get(path, 0)

    @property
    def authorization_endpoint(self) -> str:
        return self.issuer + "/protocol/openid-connect/auth"

    def authorize(self, query: dict[str, list[str]]) -> tuple[int, str]:
        """The authorization endpoint: checks the request, then signs `signed_in` in at once (no UI).
        Answers (HTTP status, redirect location or error text)."""
        one = {name: values[0] for name, values in query.items() if len(values) == 1}
        redirect_uri, state = one.get("redirect_uri", ""), one.get("state")
        if one.get("client_id") != CLIENT_ID or not redirect_uri.startswith(("http://", "https://")):
            return 400, "unknown client or redirect_uri"  # never redirect to an unverified URI
        back: dict[str, str] = {"state": state} if state is not None else {}
        if self.deny is not None:
            back["error"] = self.deny
        elif (
            one.get("response_type") != "code"
            or one.get("code_challenge_method") != "S256"
            or not one.get("code_challenge")
            or "openid" not in one.get("scope", "").split()
        ):
            back["error"] = "invalid_request"
        else:
            code = secrets.token_urlsafe(24)
            self.codes[code] = {
                "challenge": one["code_challenge"],
                "redirect_uri": redirect_uri,
                "nonce": one.get("nonce", ""),
            }
            back["code"] = code
        return 302, redirect_uri + "?" + urllib.parse.urlencode(back)

    def redeem(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        """The token endpoint's authorization_code grant: a code is good once, for its redirect URI and
        the verifier whose S256 hash was sent with it."""
        one = {name: values[0] for name, values in form.items() if len(values) == 1}
        grant = self.codes.pop(one.get("code", ""), None)
        verifier = one.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if (
            grant is None
            or grant["redirect_uri"] != one.get("redirect_uri")
            or grant["challenge"] != challenge
        ):
            return 400, {"error": "invalid_grant", "error_description": "Code not valid"}
        person = dict(self.signed_in)
        id_claims = {"aud": CLIENT_ID, "azp": CLIENT_ID, "typ": "ID", "nonce": grant["nonce"], **person}
        return 200, {
            "access_token": self.token(**person),
            "id_token": self.token(**{**id_claims, **self.id_token_overrides}),
            "token_type": "Bearer",
            "expires_in": 300,
        }


def _handler(idp: IdP) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, document: Any) -> None:
            self._send(status, json.dumps(document).encode())

        def _route(self) -> str | None:
            path = urllib.parse.urlsplit(self.path).path
            idp.requests[path] = idp.requests.get(path, 0) + 1
            if path in idp.override:
                self._send(*idp.override[path])
                return None
            return path

        def do_GET(self) -> None:
            path = self._route()
            if path is None:
                return
            realm = "/realms/city"
            if path == realm + "/.well-known/openid-configuration":
                self._json(
                    200,
                    {
                        "issuer": idp.issuer,
                        "jwks_uri": idp.issuer + "/protocol/openid-connect/certs",
                        "token_endpoint": idp.issuer + "/protocol/openid-connect/token",
                        "authorization_endpoint": idp.authorization_endpoint,
                    },
                )
            elif path == realm + "/protocol/openid-connect/certs":
                self._json(200, {"keys": [key.jwk() for key in idp.keys]})
            elif path == realm + "/protocol/openid-connect/auth":
                status, where = idp.authorize(urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query))
                if status != 302:
                    self._send(status, where.encode(), "text/plain")
                    return
                self.send_response(302)
                self.send_header("Location", where)
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._json(404, {"error": "not found"})

        def do_POST(self) -> None:
            path = self._route()
            if path is None:
                return
            length = int(self.headers.get("Content-Length", "0"))
            form = urllib.parse.parse_qs(self.rfile.read(length).decode())
            idp.token_requests.append(form)
            expected = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            if self.headers.get("Authorization") != expected:
                self._json(401, {"error": "invalid_client"})
                return
            if form.get("grant_type") == ["authorization_code"]:
                self._json(*idp.redeem(form))
                return
            user, password = form.get("username", [""])[0], form.get("password", [""])[0]
            if form.get("grant_type") != ["password"] or idp.users.get(user) != password:
                self._json(400, {"error": "invalid_grant", "error_description": "Invalid user credentials"})
                return
            token = idp.token(sub=f"id-{user}", preferred_username=user)
            self._json(200, {"access_token": token, "token_type": "Bearer", "expires_in": 300})

    return Handler


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def idp(clock: FakeClock) -> Iterator[IdP]:
    state = IdP(keys=[rsa_key("rsa-1"), ec_key("ec-1")], clock=clock)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    state.server = server
    yield state
    state.stop()
