"""The local status page: a Flask blueprint, server-rendered, live through Server-Sent Events.

Routes: /login (GET form, POST), /logout (POST), /status (the page), /status/data (JSON), /status/events
(SSE), /status/frame/<camera>.jpg (a camera's latest anonymized frame), /status/act and /status/set
(actuation), /status/selftest, /status/republish; with an OIDC sign-in, /status/login/oidc and its
callback (oidc_login.py). Everything but the login pages requires a session; everything that changes state
requires the CSRF token and the operator role.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from flask import Blueprint, Flask, Response, g, jsonify, redirect, render_template, request, session, url_for

from ...core.model import ModelError, ReadOnlyResource, UnknownElement
from ..publisher import OutboxPublisher
from .auth import Users, check_csrf, client_address, csrf_token, login_required, start_session
from .config import StatusSection
from .history import History
from .oidc_login import OidcSignIn, add_oidc_routes
from .privacy import page_value
from .selftest import run_selftest
from .sources import StatusSources, resource_view

log = logging.getLogger("agent.northbound.status")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
STATUS_PERIOD = 2.0  # seconds between full status frames on the live stream
COALESCE = 0.1  # value updates are batched per tenth of a second, latest value per resource
STREAM_LIFETIME = 600.0  # a live stream ends after this; EventSource reconnects (frees stuck threads)


class StreamSlots:
    """Bounds the number of open live streams: each holds one of the server's threads."""

    def __init__(self, limit: int) -> None:
        self._free = threading.BoundedSemaphore(limit)

    def acquire(self) -> bool:
        return self._free.acquire(blocking=False)

    def release(self) -> None:
        self._free.release()


def create_status_blueprint(
    sources: StatusSources,
    settings: StatusSection,
    accounts: Iterable[tuple[str, str, Iterable[str]]],
    sign_in: OidcSignIn | None = None,
) -> Blueprint:
    users = Users(settings, accounts)
    history = History(sources.model, seconds=settings.history_seconds)
    slots = StreamSlots(settings.max_streams)
    bp = Blueprint(
        "status",
        __name__,
        template_folder="templates",
        static_folder="static",
        static_url_path="/status/static",
    )

    @bp.after_request
    def harden(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @bp.get("/")
    def root() -> Response:
        return redirect(url_for("status.page"))

    def login_page(error: str | None = None, status: int = 200) -> Response:
        page = render_template(
            "login.html",
            csrf=csrf_token(),
            device=sources.device_id,
            error=error,
            sign_in_with=sign_in.label if sign_in is not None else None,
        )
        return Response(page, status=status)

    @bp.get("/login")
    def login_form() -> Response:
        return login_page()

    @bp.post("/login")
    def login() -> Any:
        check_csrf()
        source = client_address()
        wait = users.limiter.retry_after(source)
        if wait > 0:
            response = login_page(f"Too many failed logins: try again in {int(wait) + 1} s.", 429)
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        name = request.form.get("username", "")[:64]
        role = users.check(name, request.form.get("password", ""))
        if role is None:
            users.limiter.failed(source)
            log.warning("status page login failed", extra={"client": source})
            return login_page("Wrong user name or password.", 401)
        users.limiter.succeeded(source)
        start_session(name, role, users.session_seconds)
        log.info("status page login", extra={"user": name, "client": source})
        return redirect(url_for("status.page"))

    if sign_in is not None:
        add_oidc_routes(
            bp, sign_in, settings, login_page, device=sources.device_id, session_seconds=users.session_seconds
        )

    @bp.post("/logout")
    def logout() -> Response:
        check_csrf()
        session.clear()
        return redirect(url_for("status.login_form"))

    @bp.get("/status")
    @login_required()
    def page() -> str:
        return render_template(
            "status.html",
            csrf=csrf_token(),
            user=g.user,
            device=sources.device_id,
            status=sources.status(),
            providers=sources.providers(),
        )

    @bp.get("/status/data")
    @login_required()
    def data() -> Response:
        since = time.time() - settings.history_seconds
        return jsonify(
            {
                "status": sources.status(),
                "providers": sources.providers(),
                "history": history.all_series(since),
                "tracks": history.tracks(since),
            }
        )

    @bp.get("/status/events")
    @login_required()
    def events() -> Response:
        if not slots.acquire():
            return _error(503, "too many live pages open")
        return Response(
            _stream(sources, slots.release),
            mimetype="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @bp.get("/status/frame/<camera>.jpg")
    @login_required()
    def frame(camera: str) -> Response:
        # Only ever the anonymizer's output, read from the model (privacy.py); the name is looked up,
        # never used in a path or echoed back.
        if camera not in sources.privacy_panel.streams:
            return _error(404, "no camera anonymizer of that name")
        record = sources.privacy_panel.latest(camera)
        if record is None:
            return _error(404, "no anonymized frame yet")
        response = Response(record.jpeg, mimetype="image/jpeg")
        response.headers["Cache-Control"] = "no-store"
        return response

    @bp.post("/status/act")
    @login_required(role="operator")
    def act() -> Response:
        target, params = _target(request.get_json(silent=True))
        try:
            result = sources.model.act(*target, params)
        except UnknownElement as error:
            return _error(404, str(error))
        except ModelError as error:
            return _error(400, str(error))
        log.info(
            "actuated from the status page", extra={"user": g.user["name"], "resource": "/".join(target)}
        )
        return jsonify({"result": result})

    @bp.post("/status/set")
    @login_required(role="operator")
    def set_value() -> Response:
        body = request.get_json(silent=True)
        target, _ = _target(body)
        try:
            snapshot = sources.model.set(*target, body.get("value"))
        except UnknownElement as error:
            return _error(404, str(error))
        except ReadOnlyResource as error:
            return _error(403, str(error))
        except ModelError as error:
            return _error(400, str(error))
        log.info("set from the status page", extra={"user": g.user["name"], "resource": "/".join(target)})
        return jsonify(resource_view(snapshot, time.time()))

    @bp.post("/status/selftest")
    @login_required(role="operator")
    def selftest() -> Response:
        return jsonify(run_selftest(sources))

    @bp.post("/status/republish")
    @login_required(role="operator")
    def republish() -> Response:
        done = []
        for name, record in sources.runtime.supervisor.records.items():
            component = record.component
            if isinstance(component, OutboxPublisher) and hasattr(component, "republish_meta"):
                component.republish_meta()
                done.append(name)
        if not done:
            return _error(409, "no publisher that publishes meta is configured")
        return jsonify({"republished": done})

    return bp


def _target(body: Any) -> tuple[tuple[str, str, str], dict[str, Any]]:
    from werkzeug.exceptions import BadRequest as HttpBadRequest

    if not isinstance(body, dict):
        raise HttpBadRequest("expected a JSON object")
    parts = tuple(body.get(k) for k in ("provider", "service", "resource"))
    params = body.get("params", {})
    if not all(isinstance(p, str) for p in parts) or not isinstance(params, dict):
        raise HttpBadRequest("expected provider, service and resource names and a params object")
    return parts, params  # type: ignore[return-value]


def _error(status: int, message: str) -> Response:
    response = jsonify({"error": message, "statusCode": status})
    response.status_code = status
    return response


def _stream(sources: StatusSources, release: Callable[[], None]) -> Iterator[str]:
    """Value updates as they come (coalesced), a status frame every STATUS_PERIOD, until the client goes."""
    subscription = sources.model.subscribe("status-page", maxsize=5000)
    began = time.monotonic()
    try:
        yield "retry: 2000\n\n"
        # Subscribed first, then a full picture: nothing that changed between the page's first load (or a
        # reconnect) and this subscription is missed.
        yield _frame("providers", sources.providers())
        yield _frame("status", sources.status())
        next_status = time.monotonic() + STATUS_PERIOD
        while time.monotonic() - began < STREAM_LIFETIME:
            events = subscription.get_batch(5000, timeout=COALESCE)
            latest: dict[str, dict[str, Any]] = {}
            shape_changed = False
            for event in events:
                if event.type == "VALUE_UPDATED":
                    latest[event.path] = {
                        "path": event.path,
                        "value": page_value(event.value),  # a camera frame: its summary, not the JPEG
                        "timestamp": event.timestamp,
                    }
                elif event.type.is_lifecycle:
                    shape_changed = True
            if shape_changed:
                yield _frame("providers", sources.providers())
            if latest:
                yield _frame("values", list(latest.values()))
            if time.monotonic() >= next_status:
                yield _frame("status", sources.status())
                next_status = time.monotonic() + STATUS_PERIOD
            if subscription.dropped:
                subscription.dropped = 0
                yield _frame("providers", sources.providers())  # fell behind: resynchronise
    finally:
        subscription.close()
        release()


def _frame(kind: str, data: Any) -> str:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"


def install_status_page(
    app: Flask,
    sources: StatusSources,
    settings: StatusSection,
    accounts: Iterable[tuple[str, str, Iterable[str]]],
    sign_in: OidcSignIn | None = None,
) -> None:
    """Mounts the page on an agent's web app, with a fresh session key and hardened cookies."""
    import secrets
    from datetime import timedelta

    app.secret_key = secrets.token_bytes(32)
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        SESSION_COOKIE_NAME="msec_session",
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings.session_minutes),
    )
    app.register_blueprint(create_status_blueprint(sources, settings, accounts, sign_in))
