"""The OpenID Connect authorization code flow with PKCE (RFC 7636, S256): a browser sign-in at the IdP.

`start(binding)` makes a random `state`, `nonce` and PKCE verifier and keeps them here, server-side (the
browser only ever sees the state and the S256 challenge), bound to `binding` (a random value the caller
keeps in a cookie of the browser that started the sign-in), for `ttl` seconds and for one use. It
answers the IdP URL to send the browser to.

`finish(params, binding)` takes the callback's query parameters. The state must be pending and bound to
the same browser; the code is exchanged at the token endpoint with the verifier, the configured redirect
URI and the client's credentials; the ID token is validated (signature, issuer, `aud` = our client, time,
nonce) and so is the access token, exactly as the REST facade validates a bearer token: its roles are
the user's roles, so a user may do on the page what the facade would let them do.

Every refusal is a `SignInRefused` whose message is safe to show on the login page (no code, token or
secret); `SignInUnavailable` says the IdP could not be asked.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from agent.security.config import OidcSection
from agent.security.idp_http import IdPError, IdPHttp
from agent.security.jwks import JwksCache, KeysUnavailable
from agent.security.oidc import InvalidToken, TokenIdentity, TokenValidator, idp_clients, post_grant

log = logging.getLogger(__name__)

Clock = Callable[[], float]

MAX_CODE_CHARS = 4096
MAX_STATE_CHARS = 128
# An OAuth error code is shown to the user only when it looks like one (RFC 6749 §4.1.2.1: a short ASCII
# word); anything else the IdP (or whoever forged the callback URL) put there is not echoed.
_ERROR_CODE = re.compile(r"[a-z_]{1,64}")

EXPIRED = "This sign-in expired or was not started in this browser; please sign in again."
UNREACHABLE = "The identity provider cannot be reached; please try again later."


class SignInRefused(Exception):
    """The sign-in failed; the message says why and is safe to show."""


class SignInUnavailable(SignInRefused):
    """The identity provider could not be asked (down, misconfigured, unusable answer)."""


@dataclass(frozen=True, slots=True)
class _Pending:
    binding: bytes  # SHA-256 of the browser's binding value
    nonce: str
    verifier: str
    expires_at: float


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _digest(binding: str) -> bytes:
    return hashlib.sha256(binding.encode("utf-8", "replace")).digest()


class AuthorizationCodeLogin:
    def __init__(
        self,
        http: IdPHttp,
        keys: JwksCache,
        validator: TokenValidator,
        *,
        client_id: str,
        client_secret: str | None,
        redirect_uri: str,
        clock: Clock,
        scope: str = "openid",
        ttl: float = 300.0,
        max_pending: int = 1000,
    ) -> None:
        self._http = http
        self._keys = keys
        self._validator = validator
        self._client_id = client_id
        self._client_secret = client_secret
        self._redirect_uri = redirect_uri
        self._clock = clock
        # `openid` is what makes the IdP issue an ID token; it is added when the configured scope lacks it.
        self._scope = scope if "openid" in scope.split() else f"openid {scope}".strip()
        self.ttl = ttl
        self._max_pending = max_pending
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def start(self, binding: str) -> str:
        """The IdP URL that begins a sign-in for the browser holding `binding`."""
        try:
            endpoint = self._keys.discover().authorization_endpoint
            if endpoint is None:
                raise IdPError("the discovery document has no 'authorization_endpoint'")
            self._http.check_url(endpoint)
        except (IdPError, KeysUnavailable) as error:
            log.warning("OIDC sign-in cannot start: %s", error)
            raise SignInUnavailable(UNREACHABLE) from None
        state, nonce, verifier = (secrets.token_urlsafe(n) for n in (32, 32, 64))
        now = self._clock()
        with self._lock:
            self._forget_expired(now)
            while len(self._pending) >= self._max_pending:
                self._pending.popitem(last=False)  # the oldest sign-in started gives way
            self._pending[state] = _Pending(_digest(binding), nonce, verifier, now + self.ttl)
        query = urllib.parse.urlencode(
            {
                "response_type": "code",
                "client_id": self._client_id,
                "redirect_uri": self._redirect_uri,
                "scope": self._scope,
                "state": state,
                "nonce": nonce,
                "code_challenge": _s256(verifier),
                "code_challenge_method": "S256",
            }
        )
        return endpoint + ("&" if urllib.parse.urlsplit(endpoint).query else "?") + query

    def finish(self, params: Mapping[str, str], binding: str | None) -> TokenIdentity:
        """The signed-in user, from the callback's query parameters; raises SignInRefused."""
        state = params.get("state") or ""
        pending = self._take(state) if len(state) <= MAX_STATE_CHARS else None
        error = params.get("error")
        if error is not None:
            shown = error if _ERROR_CODE.fullmatch(error) else "an unrecognised error"
            log.info("OIDC sign-in refused by the identity provider: %s", shown)
            raise SignInRefused(f"The identity provider did not sign you in ({shown}).")
        if pending is None or binding is None or not hmac.compare_digest(pending.binding, _digest(binding)):
            log.info("OIDC sign-in callback refused: unknown, expired, used or foreign state")
            raise SignInRefused(EXPIRED)
        code = params.get("code") or ""
        if not code or len(code) > MAX_CODE_CHARS:
            raise SignInRefused(
                "The identity provider's answer carries no usable code; please sign in again."
            )
        id_token, access_token = self._exchange(code, pending.verifier)
        try:
            person = self._validator.validate_id_token(
                id_token, client_id=self._client_id, nonce=pending.nonce
            )
            identity = self._validator.validate(access_token)
        except InvalidToken as error:
            log.warning("OIDC sign-in refused: %s", error)
            raise SignInRefused(f"The identity provider's answer is not acceptable: {error}.") from None
        except KeysUnavailable as error:
            log.warning("OIDC sign-in cannot check the tokens: %s", error)
            raise SignInUnavailable(UNREACHABLE) from None
        if not hmac.compare_digest(person.name.encode(), identity.name.encode()):
            log.warning("OIDC sign-in refused: the ID and access tokens name different users")
            raise SignInRefused("The identity provider's answer is not acceptable: its tokens disagree.")
        return identity

    def _take(self, state: str) -> _Pending | None:
        """The pending sign-in for this state, removed: a state is good for one callback only."""
        with self._lock:
            self._forget_expired(self._clock())
            return self._pending.pop(state, None)

    def _forget_expired(self, now: float) -> None:
        for state in [s for s, p in self._pending.items() if p.expires_at <= now]:
            del self._pending[state]

    def _exchange(self, code: str, verifier: str) -> tuple[str, str]:
        """The ID and access tokens for a code (RFC 6749 §4.1.3, RFC 7636 §4.5)."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self._redirect_uri,
            "code_verifier": verifier,
        }
        try:
            status, body = post_grant(self._http, self._keys, form, self._client_id, self._client_secret)
        except (IdPError, KeysUnavailable) as error:
            log.warning("OIDC sign-in: the code could not be exchanged: %s", error)
            raise SignInUnavailable(UNREACHABLE) from None
        reason = body.get("error") if isinstance(body, dict) else None
        if status in (400, 401) and reason == "invalid_client":
            log.error("OIDC sign-in: the identity provider refuses this device's client credentials")
            raise SignInUnavailable("The identity provider refuses this device's client credentials.")
        if status in (400, 401):
            log.info("OIDC sign-in: the identity provider refused the code: %s", reason or f"HTTP {status}")
            raise SignInRefused("The identity provider refused the sign-in code; please sign in again.")
        if status != 200 or not isinstance(body, dict):
            log.warning("OIDC sign-in: the token endpoint answered HTTP %s", status)
            raise SignInUnavailable(UNREACHABLE)
        id_token, access_token = body.get("id_token"), body.get("access_token")
        if not isinstance(id_token, str) or not isinstance(access_token, str):
            log.warning("OIDC sign-in: the token endpoint's answer lacks an ID or access token")
            raise SignInUnavailable("The identity provider's answer lacks an ID or access token.")
        return id_token, access_token


def authorization_code_login(
    oidc: OidcSection, *, client_secret: str | None, redirect_uri: str, clock: Clock, ttl: float
) -> AuthorizationCodeLogin:
    """The sign-in for a `[security.oidc]` table (which must name a `client_id`)."""
    if not oidc.client_id:
        raise ValueError("the OIDC sign-in needs [security.oidc] client_id")
    http, keys, validator = idp_clients(oidc, clock)
    return AuthorizationCodeLogin(
        http,
        keys,
        validator,
        client_id=oidc.client_id,
        client_secret=client_secret,
        redirect_uri=redirect_uri,
        clock=clock,
        scope=oidc.scope,
        ttl=ttl,
    )


__all__ = ["AuthorizationCodeLogin", "SignInRefused", "SignInUnavailable", "authorization_code_login"]
