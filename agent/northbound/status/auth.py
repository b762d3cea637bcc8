"""Login, sessions and CSRF for the status page.

Sessions are Flask's signed cookies with a key made at start (a restart logs everyone out, which is fine
for a depot tool and keeps no secret on disk). Every state-changing request must carry the session's CSRF
token (form field or X-CSRF-Token header). Failed logins are limited per client address.
"""

from __future__ import annotations

import functools
import hmac
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from typing import Any

from flask import Response, abort, g, jsonify, redirect, request, session, url_for

from ...security.passwords import parse_hash, verify_password
from ...security.ratelimit import FailureLimiter
from .config import StatusSection

log = logging.getLogger("agent.northbound.status")


OPERATOR_ROLE = "operator"


def page_role(roles: Iterable[str]) -> str:
    """A user's role on the page, from their roles as the REST facade sees them (a local user's configured
    roles, or an IdP user's Keycloak roles): the role `operator` may act; everyone else may look."""
    return "operator" if OPERATOR_ROLE in roles else "viewer"


class Users:
    """The agent's local users ([[security.users]]: name, scrypt hash, roles) as the page sees them."""

    def __init__(self, settings: StatusSection, accounts: Iterable[tuple[str, str, Iterable[str]]]) -> None:
        accounts = list(accounts)
        self._hashes = {name: parse_hash(password_hash) for name, password_hash, _ in accounts}
        self._roles = {name: page_role(roles) for name, _, roles in accounts}
        self.limiter = FailureLimiter(
            max_failures=settings.login_failures,
            window=settings.login_pause_seconds,
            lockout=settings.login_pause_seconds,
            clock=time.monotonic,
        )
        self.session_seconds = settings.session_minutes * 60

    def check(self, name: str, password: str) -> str | None:
        """The user's role when the password matches; None otherwise (same work for unknown users)."""
        ok = verify_password(password, self._hashes.get(name))
        return self._roles[name] if ok else None


def start_session(name: str, role: str, seconds: float) -> None:
    """Logs `name` in: a fresh session (a new id, so no session fixation) with its own CSRF token."""
    session.clear()
    session["user"] = {"name": name, "role": role, "expires": time.time() + seconds}
    session.permanent = True
    csrf_token()


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    sent = request.headers.get("X-CSRF-Token") or request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        log.warning("request refused: missing or wrong CSRF token", extra={"path": request.path})
        abort(403, description="missing or wrong CSRF token")


def current_user() -> dict[str, Any] | None:
    user = session.get("user")
    if not user or user.get("expires", 0) < time.time():
        return None
    return user


def login_required(role: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Pages redirect to the login form; API calls (JSON, SSE) answer 401. `role` narrows it further."""

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = current_user()
            if user is None:
                if request.accept_mimetypes.accept_html and request.method == "GET":
                    return redirect(url_for("status.login_form"))
                return _json_error(401, "login required")
            if request.method not in ("GET", "HEAD"):
                check_csrf()
            if role is not None and user["role"] != role:
                return _json_error(403, f"only an {role} may do this")
            g.user = user
            return view(*args, **kwargs)

        return wrapper

    return decorate


def _json_error(status: int, message: str) -> Response:
    response = jsonify({"error": message, "statusCode": status})
    response.status_code = status
    return response


def client_address() -> str:
    # The page is served directly (no proxy on the vehicle): the socket's peer is the client.
    return request.remote_addr or "unknown"
