"""Access control seam for the northbound APIs: who is calling, and may they do this?

The REST facade (and the status page) ask an `AccessControl` two questions: `authenticate(headers)` and
`allowed(principal, operation, provider, service, resource)`. Implementations: OIDC bearer tokens, local
users with hashed passwords, per-role rules (see the REST facade issue). `OpenAccess` is the explicit
development policy; production configuration refuses it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class Operation(StrEnum):
    DESCRIBE = "DESCRIBE"  # see that a provider/service/resource exists (lists, descriptions)
    READ = "READ"  # GET values, SUBSCRIBE
    UPDATE = "UPDATE"  # SET
    ACT = "ACT"  # ACT


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    roles: frozenset[str] = field(default_factory=frozenset)
    anonymous: bool = False
    via: str = ""  # how it was authenticated: "bearer", "basic", "token", "anonymous"


ANONYMOUS = Principal("anonymous", anonymous=True, via="anonymous")


class Unauthenticated(Exception):
    """No acceptable credentials: answered 401 with a WWW-Authenticate challenge per configured scheme.
    The message is safe to show to the client (it never contains the credentials)."""

    def __init__(self, message: str, challenges: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.challenges = challenges


class AccessControl(Protocol):
    def authenticate(self, headers: Mapping[str, str], *, remote_addr: str | None = None) -> Principal:
        """The caller behind these request headers (from `remote_addr`, for rate limiting failed logins);
        raises Unauthenticated."""
        ...

    def allowed(
        self,
        principal: Principal,
        operation: Operation,
        provider: str,
        service: str | None = None,
        resource: str | None = None,
    ) -> bool:
        """Whether the principal may do `operation` on that provider (or service, or resource)."""
        ...


class OpenAccess:
    """Everyone is anonymous and may do everything. For development and the demo only."""

    insecure = True

    def authenticate(self, headers: Mapping[str, str], *, remote_addr: str | None = None) -> Principal:
        return ANONYMOUS

    def allowed(
        self,
        principal: Principal,
        operation: Operation,
        provider: str,
        service: str | None = None,
        resource: str | None = None,
    ) -> bool:
        return True
