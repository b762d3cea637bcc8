"""The `[status]` table: the local status page's users and session settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from ...core.config.schema_base import Name, Strict
from ...security.passwords import InvalidHash, parse_hash


class StatusUser(Strict):
    # An scrypt hash (`python -m agent.security.passwords` makes one), never a password.
    password_hash: str = Field(max_length=512)
    # viewer: sees everything; operator: may also actuate outputs, re-publish meta and run a self-test.
    role: Literal["viewer", "operator"] = "viewer"

    @field_validator("password_hash")
    @classmethod
    def _is_a_hash(cls, value: str) -> str:
        try:
            parse_hash(value)
        except InvalidHash as error:
            raise ValueError(str(error)) from None
        return value


class StatusSection(Strict):
    enabled: bool = True
    users: dict[Name, StatusUser] = {}
    # Secure cookies need HTTPS, except on loopback, which browsers treat as a secure context. A page
    # opened from the depot's network therefore needs [http] TLS; switching this off is for the demo only.
    cookie_secure: bool = True
    session_minutes: int = Field(default=480, ge=5, le=10_080)
    history_seconds: int = Field(default=300, ge=10, le=3600)
    max_streams: int = Field(default=8, ge=1, le=64)  # open live pages at once (each holds a server thread)
    login_failures: int = Field(default=5, ge=1, le=100)  # per client address, then a pause
    login_pause_seconds: float = Field(default=60.0, ge=1, le=3600, allow_inf_nan=False)
