"""Who is calling, and may they: the facade's use of the AccessControl seam (agent.security.access).

Every request is authenticated (`access.authenticate(headers)`; Unauthenticated -> 401 with one
WWW-Authenticate line per challenge), then each operation is checked with `access.allowed`. Providers a
caller may not DESCRIBE are left out of lists; naming one directly is a 403.

Legacy session tokens are duck-typed extras of the access object, used only when it has them:
  - `login(headers) -> str | Mapping` for /sensinact.login: the token, or a mapping with `token` and
    optionally `generated` / `validUntil` (epoch ms); raises Unauthenticated for bad credentials;
  - `principal_for_token(token: str) -> Principal | None` for requests carrying `X-Auth-Token`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...security.access import AccessControl, Operation, Principal, Unauthenticated
from ...security.policy import IdPUnavailable
from ...security.ratelimit import RateLimited
from .envelopes import RestError

TOKEN_HEADER = "X-Auth-Token"


class Guard:
    def __init__(self, access: AccessControl) -> None:
        self.access = access

    def principal(self, headers: Mapping[str, str], remote_addr: str | None = None) -> Principal:
        token = headers.get(TOKEN_HEADER)
        lookup = getattr(self.access, "principal_for_token", None)
        if token and callable(lookup):
            principal = lookup(token)
            if principal is None:
                raise RestError(401, "Unknown or expired token")
            return principal
        try:
            return self.access.authenticate(headers, remote_addr=remote_addr)
        except Unauthenticated as error:
            raise _refusal(error, 401) from None

    def may(
        self,
        principal: Principal,
        operation: Operation,
        provider: str,
        service: str | None = None,
        resource: str | None = None,
    ) -> bool:
        return bool(self.access.allowed(principal, operation, provider, service, resource))

    def require(
        self,
        principal: Principal,
        operation: Operation,
        provider: str,
        service: str | None = None,
        resource: str | None = None,
    ) -> None:
        if not self.may(principal, operation, provider, service, resource):
            raise RestError(403, f"{operation} not permitted")

    @property
    def can_login(self) -> bool:
        enabled = getattr(self.access, "sessions_enabled", True)  # the policy may switch sessions off
        return callable(getattr(self.access, "login", None)) and bool(enabled)

    def login(self, headers: Mapping[str, str], remote_addr: str | None = None) -> dict[str, Any]:
        try:
            issued = self.access.login(headers, remote_addr=remote_addr)  # type: ignore[attr-defined]
        except Unauthenticated as error:
            # Legacy /sensinact.login answers bad credentials with 403.
            raise _refusal(error, 403) from None
        if isinstance(issued, str):
            return {"token": issued}
        if isinstance(issued, Mapping) and isinstance(issued.get("token"), str):
            return {key: issued[key] for key in ("token", "generated", "validUntil") if key in issued}
        if isinstance(getattr(issued, "token", None), str):  # security.tokens.IssuedToken (epoch seconds)
            return {
                "token": issued.token,
                "generated": int(issued.generated * 1000),
                "validUntil": int(issued.valid_until * 1000),
            }
        raise RestError(500, "The login provider answered no token")


def _refusal(error: Unauthenticated, status: int) -> RestError:
    """401/403 for bad credentials; 429 when failed logins from this address are paused; 503 when the
    identity provider cannot be reached and no cached key can settle the question."""
    if isinstance(error, RateLimited):
        return RestError(429, str(error), retry_after=error.retry_after)
    if isinstance(error, IdPUnavailable):
        return RestError(503, str(error), challenges=error.challenges)
    return RestError(status, str(error) or "Unauthorized", challenges=error.challenges)
