"""The `[security]` configuration table (registered by the assembly as an extension section).

Strict like every table of the agent (unknown keys and silent conversions are errors). Secrets are
references (`file:/abs/path`, `env:NAME`, `tpm:NAME`), resolved by the assembly and handed to
`SecurityPolicy`; password hashes are not secrets and are written inline. docs/security.md has an example.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent.security.passwords import InvalidHash, parse_hash
from agent.security.secrets import SecretRef

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}")
# The realm goes into a quoted WWW-Authenticate parameter: no quotes, backslashes or control characters.
_REALM = re.compile(r"[A-Za-z0-9 _.:@/-]{1,64}")

Seconds = float
AlgorithmName = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
]
OperationName = Literal["DESCRIBE", "READ", "UPDATE", "ACT", "*"]


class _Strict(BaseModel):
    # Same convention as agent.core.config.schema_base.Strict, which security must not import.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError("expected 1-128 letters, digits, '_', '.', ':', '@' or '-'")
    return value


class OidcSection(_Strict):
    """Bearer tokens from an OpenID Connect provider (Keycloak or any other)."""

    discovery_url: str  # https://idp/realms/<realm>/.well-known/openid-configuration
    issuer: str | None = None  # default: discovery_url without /.well-known/openid-configuration
    audiences: list[str] = Field(min_length=1, max_length=16)  # a token's `aud` must name one of these
    algorithms: list[AlgorithmName] = Field(default=["RS256", "ES256"], min_length=1)
    leeway: Seconds = Field(default=30.0, ge=0, le=300, allow_inf_nan=False)
    jwks_ttl: Seconds = Field(default=600.0, ge=10, le=86_400, allow_inf_nan=False)
    min_refetch_interval: Seconds = Field(default=30.0, ge=1, le=3600, allow_inf_nan=False)
    http_timeout: Seconds = Field(default=5.0, gt=0, le=60, allow_inf_nan=False)
    max_response_bytes: int = Field(default=1 << 20, ge=1024, le=16 << 20)
    ca_file: str | None = None  # PEM bundle that signs the IdP's certificate (default: the system's)
    allow_plain_http: bool = False  # http:// IdP URLs (tests; an IdP on the same host)
    username_claim: str = "sub"  # the claim that becomes the principal's name (e.g. preferred_username)
    password_grant: bool = False  # Basic credentials of unknown local users go to the IdP's token endpoint
    client_id: str | None = None  # required for the password grant
    client_secret: SecretRef | None = None  # absent for a public client
    scope: str = "openid"

    @field_validator("discovery_url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urllib.parse.urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname or parts.username or parts.password:
            raise ValueError("expected an https:// URL without user or password")
        return value

    @field_validator("ca_file")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("expected an absolute path")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> OidcSection:
        if self.discovery_url.startswith("http:") and not self.allow_plain_http:
            raise ValueError("discovery_url must be https:// (or set allow_plain_http)")
        if self.password_grant and not self.client_id:
            raise ValueError("password_grant needs client_id")
        return self


class UserEntry(_Strict):
    """A local user, checked against its scrypt hash (make one with `python -m agent.security.passwords`)."""

    name: str
    password_hash: str
    roles: list[str] = Field(default=[], max_length=64)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value)

    @field_validator("password_hash")
    @classmethod
    def _hash(cls, value: str) -> str:
        try:
            parse_hash(value)
        except InvalidHash as error:
            raise ValueError(str(error)) from None
        return value


class SessionsSection(_Strict):
    """Legacy `/sensinact.login` and `X-Auth-Token` sessions."""

    enabled: bool = False
    ttl: Seconds = Field(default=600.0, ge=10, le=86_400, allow_inf_nan=False)
    max_sessions: int = Field(default=10_000, ge=1, le=1_000_000)


class LoginLimitSection(_Strict):
    """Failed Basic (and legacy login) attempts per source address."""

    max_failures: int = Field(default=5, ge=1, le=1000)
    window: Seconds = Field(default=300.0, gt=0, le=86_400, allow_inf_nan=False)
    lockout: Seconds = Field(default=300.0, gt=0, le=86_400, allow_inf_nan=False)


class RuleEntry(_Strict):
    """One authorization rule; the first that matches decides (see docs/security.md)."""

    roles: list[str] = Field(default=[], max_length=64)
    users: list[str] = Field(default=[], max_length=64)
    operations: list[OperationName] = Field(min_length=1)
    provider: str = Field(default="*", min_length=1, max_length=256)
    service: str = Field(default="*", min_length=1, max_length=256)
    resource: str = Field(default="*", min_length=1, max_length=256)
    effect: Literal["allow", "deny"] = "allow"

    @model_validator(mode="after")
    def _someone(self) -> RuleEntry:
        if not self.roles and not self.users:
            raise ValueError("a rule needs roles or users (use role 'authenticated' for every user)")
        return self


class SecuritySection(_Strict):
    realm: str = "msec"
    allow_anonymous: bool = False  # when on, requests without credentials get the 'anonymous' role
    oidc: OidcSection | None = None
    users: list[UserEntry] = Field(default=[], max_length=1000)
    sessions: SessionsSection = SessionsSection()
    login_limit: LoginLimitSection = LoginLimitSection()
    rules: list[RuleEntry] = Field(default=[], max_length=10_000)

    @field_validator("realm")
    @classmethod
    def _realm(cls, value: str) -> str:
        if not _REALM.fullmatch(value):
            raise ValueError("expected 1-64 letters, digits, spaces or '_.:@/-'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SecuritySection:
        names = [user.name for user in self.users]
        if len(names) != len(set(names)):
            raise ValueError("user names must be unique")
        if self.oidc is None and not self.users and not self.allow_anonymous:
            raise ValueError("nobody could ever get in: configure [security.oidc], users or allow_anonymous")
        return self
