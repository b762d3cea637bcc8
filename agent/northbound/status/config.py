"""The `[status]` table: the local status page's session settings.

Its users are the agent's local users (`[[security.users]]`): one list for the REST facade and the page.
A user with the role `operator` may act from the page; every other user may look. With `oidc_login`, users
of the `[security.oidc]` identity provider may also sign in there (authorization code flow with PKCE)."""

from __future__ import annotations

import urllib.parse

from pydantic import Field, field_validator, model_validator

from ...core.config.schema_base import Strict, is_loopback_host

OIDC_CALLBACK_PATH = "/status/login/oidc/callback"


class StatusSection(Strict):
    enabled: bool = True
    # Secure cookies need HTTPS, except on loopback, which browsers treat as a secure context. A page
    # opened from the depot's network therefore needs [http] TLS; switching this off is for the demo only.
    cookie_secure: bool = True
    session_minutes: int = Field(default=480, ge=5, le=10_080)
    history_seconds: int = Field(default=300, ge=10, le=3600)
    max_streams: int = Field(default=8, ge=1, le=64)  # open live pages at once (each holds a server thread)
    login_failures: int = Field(default=5, ge=1, le=100)  # per client address, then a pause
    login_pause_seconds: float = Field(default=60.0, ge=1, le=3600, allow_inf_nan=False)
    # "Sign in with <IdP>" on the login page ([security.oidc] with client_id required). The callback URL is
    # the one registered at the IdP, written here: never made from a request's Host header, which a client
    # chooses.
    oidc_login: bool = False
    oidc_redirect_uri: str | None = Field(default=None, max_length=2048)
    oidc_login_seconds: int = Field(default=300, ge=30, le=1800)  # a sign-in started must end within this

    @field_validator("oidc_redirect_uri")
    @classmethod
    def _redirect_uri(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise ValueError("expected a URL without spaces or control characters")
        parts = urllib.parse.urlsplit(value)
        if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
            raise ValueError("expected a URL without user, password, query or fragment")
        if not parts.hostname or not parts.path.endswith(OIDC_CALLBACK_PATH):
            raise ValueError(f"expected an absolute URL whose path ends with {OIDC_CALLBACK_PATH}")
        # RFC 9700 §4.1 / RFC 8252 §7.3: plain http only back to the loopback interface.
        if parts.scheme != "https" and not (parts.scheme == "http" and is_loopback_host(parts.hostname)):
            raise ValueError("expected https:// (http:// only to a loopback address)")
        return value

    @model_validator(mode="after")
    def _complete(self) -> StatusSection:
        if self.oidc_login and self.oidc_redirect_uri is None:
            raise ValueError("oidc_login needs oidc_redirect_uri (the callback URL registered at the IdP)")
        return self
