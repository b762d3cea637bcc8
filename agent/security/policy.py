"""`SecurityPolicy`: the production `AccessControl` — OIDC bearer tokens, local users (or the IdP's
password grant) over Basic, legacy `X-Auth-Token` sessions, per-role rules, failed-login limiting.

How a request is authenticated (`authenticate(headers, remote_addr=...)`):
1. `Authorization: Bearer <jwt>` → validated locally against the IdP's keys (agent.security.oidc).
2. `Authorization: Basic <user:password>` → a local user's scrypt hash; a name that is no local user goes
   to the IdP's password grant when configured. Failures count against the source address.
3. `X-Auth-Token: <token>` (sessions enabled) → a session issued by `login()`.
4. Nothing → the anonymous principal when `allow_anonymous`, else 401 with a challenge per scheme.
An `Authorization` header always wins over `X-Auth-Token`; a bad one is never "downgraded" to anonymous.

Every refusal is an `Unauthenticated` whose message and challenges are safe to send (no credential);
the subclasses `RateLimited` (→ 429 with Retry-After) and `IdPUnavailable` (→ 503) let a facade refine
the status. Failures are logged with their reason and source, never with the credential.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Callable, Mapping

from agent.security.access import ANONYMOUS, Operation, Principal, Unauthenticated
from agent.security.config import SecuritySection
from agent.security.idp_http import IdPError
from agent.security.jwks import JwksCache, KeysUnavailable
from agent.security.oidc import InvalidToken, PasswordGrant, TokenIdentity, TokenValidator, idp_clients
from agent.security.passwords import MAX_PASSWORD_BYTES, ScryptHash, parse_hash, verify_password
from agent.security.ratelimit import FailureLimiter, RateLimited
from agent.security.rules import Effect, Rule, RuleSet
from agent.security.tokens import IssuedToken, SessionTokens

log = logging.getLogger(__name__)

Clock = Callable[[], float]

MAX_BASIC_CHARS = 4096
UNKNOWN_SOURCE = "unknown"
_KNOWN_SCHEMES = frozenset(
    {"basic", "bearer", "digest", "negotiate", "ntlm", "token", "dpop", "hoba", "mutual"}
)


class IdPUnavailable(Unauthenticated):
    """The identity provider cannot be reached and no cached keys can settle the question: answer 503
    (a facade that does not know this class answers 401, which is also safe)."""


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header by name, case-insensitively, whatever mapping the facade passes (a dict or Werkzeug's)."""
    value = headers.get(name)
    if value is not None:
        return value
    wanted = name.lower()
    return next((value for key, value in headers.items() if key.lower() == wanted), None)


def _decode_basic(value: str) -> tuple[str, str] | None:
    if len(value) > MAX_BASIC_CHARS:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    username, sep, password = decoded.partition(":")
    if not sep or not username or len(password.encode()) > MAX_PASSWORD_BYTES:
        return None
    return username, password


def _rule(entry) -> Rule:  # type: ignore[no-untyped-def]  # a config.RuleEntry
    operations = (
        frozenset(Operation) if "*" in entry.operations else frozenset(map(Operation, entry.operations))
    )
    return Rule(
        operations=operations,
        roles=frozenset(entry.roles),
        users=frozenset(entry.users),
        provider=entry.provider,
        service=entry.service,
        resource=entry.resource,
        effect=Effect(entry.effect),
    )


class SecurityPolicy:
    insecure = False

    def __init__(
        self,
        section: SecuritySection,
        *,
        client_secret: str | None = None,
        clock: Clock = time.time,
    ) -> None:
        """`client_secret` is the resolved value of `section.oidc.client_secret` (a reference there)."""
        self.section = section
        self.realm = section.realm
        self._users: dict[str, tuple[ScryptHash, frozenset[str]]] = {
            user.name: (parse_hash(user.password_hash), frozenset(user.roles)) for user in section.users
        }
        self._rules = RuleSet(map(_rule, section.rules), allow_anonymous=section.allow_anonymous)
        limit = section.login_limit
        self._limiter = FailureLimiter(
            max_failures=limit.max_failures, window=limit.window, lockout=limit.lockout, clock=clock
        )
        self._sessions = (
            SessionTokens(ttl=section.sessions.ttl, max_sessions=section.sessions.max_sessions, clock=clock)
            if section.sessions.enabled
            else None
        )
        self.keys: JwksCache | None = None
        self._validator: TokenValidator | None = None
        self._grant: PasswordGrant | None = None
        oidc = section.oidc
        if oidc is not None:
            http, self.keys, self._validator = idp_clients(oidc, clock)
            if oidc.password_grant and oidc.client_id:
                self._grant = PasswordGrant(
                    http,
                    self.keys,
                    self._validator,
                    client_id=oidc.client_id,
                    client_secret=client_secret,
                    scope=oidc.scope,
                )

    # -- what the facade asks ------------------------------------------------------------------------

    @property
    def sessions_enabled(self) -> bool:
        return self._sessions is not None

    def challenges(self, bearer_error: str | None = None) -> tuple[str, ...]:
        """One WWW-Authenticate challenge per scheme offered (RFC 6750 §3 for Bearer, RFC 7617 for Basic)."""
        offered: list[str] = []
        if self._validator is not None:
            bearer = f'Bearer realm="{self.realm}"'
            if bearer_error is not None:
                bearer += f', error="invalid_token", error_description="{bearer_error}"'
            offered.append(bearer)
        if self._users or self._grant is not None:
            offered.append(f'Basic realm="{self.realm}", charset="UTF-8"')
        return tuple(offered)

    def authenticate(self, headers: Mapping[str, str], *, remote_addr: str | None = None) -> Principal:
        """The caller behind these headers. `remote_addr` is the client's address (the facade's
        REMOTE_ADDR, or the address a trusted reverse proxy reports): failed logins are limited per
        address, so without it all clients share one allowance."""
        authorization = header(headers, "Authorization")
        if authorization is not None:
            return self._credentials(authorization, remote_addr)[0]
        token = header(headers, "X-Auth-Token")
        if token is not None and self._sessions is not None:
            principal = self._sessions.lookup(token.strip())
            if principal is None:
                log.info("X-Auth-Token refused from %s: unknown or expired", remote_addr or UNKNOWN_SOURCE)
                raise Unauthenticated("unknown or expired session token", self.challenges())
            return principal
        if self.section.allow_anonymous:
            return ANONYMOUS
        raise Unauthenticated("authentication required", self.challenges())

    def login(self, headers: Mapping[str, str], *, remote_addr: str | None = None) -> IssuedToken:
        """Legacy `/sensinact.login`: Basic or Bearer credentials in, a session token out. The session
        never outlives the bearer token it was opened with."""
        if self._sessions is None:
            raise Unauthenticated("session tokens are not enabled on this device", self.challenges())
        authorization = header(headers, "Authorization")
        if authorization is None:
            raise Unauthenticated("credentials required to open a session", self.challenges())
        principal, expires_at = self._credentials(authorization, remote_addr)
        return self._sessions.issue(principal, not_after=expires_at)

    def logout(self, token: str) -> bool:
        return self._sessions is not None and self._sessions.revoke(token)

    def allowed(
        self,
        principal: Principal,
        operation: Operation,
        provider: str,
        service: str | None = None,
        resource: str | None = None,
    ) -> bool:
        return self._rules.allowed(principal, operation, provider, service, resource)

    # -- schemes --------------------------------------------------------------------------------------

    def _credentials(self, authorization: str, remote_addr: str | None) -> tuple[Principal, float | None]:
        """The principal behind an Authorization header and when its credential expires (None: never)."""
        scheme, _, value = authorization.strip().partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer" and self._validator is not None:
            identity = self._bearer(value.strip(), remote_addr)
            return Principal(identity.name, identity.roles, via="bearer"), identity.expires_at
        if scheme == "basic" and (self._users or self._grant is not None):
            return self._basic(value, remote_addr)
        # Only a well-known scheme name is logged: in a malformed header the first word may be the credential.
        named = scheme if scheme in _KNOWN_SCHEMES and value else "unknown or malformed"
        log.info("Authorization refused from %s: scheme %s not offered", remote_addr or UNKNOWN_SOURCE, named)
        raise Unauthenticated("unsupported or malformed Authorization header", self.challenges())

    def _bearer(self, token: str, remote_addr: str | None) -> TokenIdentity:
        assert self._validator is not None
        source = remote_addr or UNKNOWN_SOURCE
        try:
            return self._validator.validate(token)
        except InvalidToken as error:
            log.info("bearer token refused from %s: %s", source, error)
            raise Unauthenticated(f"invalid bearer token: {error}", self.challenges(str(error))) from None
        except KeysUnavailable as error:
            log.warning("bearer token not checkable from %s: %s", source, error)
            raise IdPUnavailable(
                "the identity provider is unreachable and no signing keys are cached; try again later",
                self.challenges("the identity provider is unreachable"),
            ) from None

    def _basic(self, value: str, remote_addr: str | None) -> tuple[Principal, float | None]:
        source = remote_addr or UNKNOWN_SOURCE
        wait = self._limiter.retry_after(source)
        if wait > 0:
            log.warning("Basic login refused from %s: rate limited for %.0f s", source, wait)
            raise RateLimited(wait, self.challenges())
        credentials = _decode_basic(value)
        username, password = credentials if credentials is not None else ("", "")
        user = self._users.get(username)
        # Known or not, one scrypt check is made: an unknown name costs the same as a wrong password.
        matches = verify_password(password, user[0] if user is not None else None)
        if user is not None and matches:
            self._limiter.succeeded(source)
            return Principal(username, user[1], via="basic"), None
        if user is None and credentials is not None and self._grant is not None:
            identity = self._password_grant(username, password, source)
            if identity is not None:
                self._limiter.succeeded(source)
                return Principal(identity.name, identity.roles, via="basic"), identity.expires_at
        self._limiter.failed(source)
        # Log a name only when it is a local user's: an unknown "name" may be a password typed too early.
        who = (
            repr(username)
            if user is not None
            else "an unknown user"
            if credentials
            else "malformed credentials"
        )
        log.warning("Basic login failed from %s for %s", source, who)
        raise Unauthenticated("invalid user name or password", self.challenges())

    def _password_grant(self, username: str, password: str, source: str) -> TokenIdentity | None:
        assert self._grant is not None
        try:
            return self._grant.exchange(username, password)
        except (IdPError, KeysUnavailable) as error:
            log.warning("password grant for a login from %s failed: %s", source, error)
            raise IdPUnavailable(
                "the identity provider is unreachable; try again later", self.challenges()
            ) from None
        except InvalidToken as error:
            log.warning("the IdP's access token for a login from %s does not validate: %s", source, error)
            return None


__all__ = ["IdPUnavailable", "IssuedToken", "RateLimited", "SecurityPolicy", "SecuritySection", "header"]
