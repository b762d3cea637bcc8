"""The `[status]` table: the local status page's session settings.

Its users are the agent's local users (`[[security.users]]`): one list for the REST facade and the page.
A user with the role `operator` may act from the page; every other user may look."""

from __future__ import annotations

from pydantic import Field

from ...core.config.schema_base import Strict


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
