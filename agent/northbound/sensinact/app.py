"""The Flask app of the sensiNact REST facade: HTTP onto the Facade, every answer an envelope.

app = create_sensinact_app(model, access, RestSection())
handle = agent.web.serve(app, "127.0.0.1", 8080)    # cheroot, never Flask's development server
...
handle.stop(); close_sensinact_app(app)             # ends SSE streams and callback threads
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from ...core.model import Model, ResourceKind, ResourceSpec, ValueMode, value_type
from ...security.access import AccessControl
from . import paths, verbs
from .config import RestSection
from .envelopes import RestError, dumps, error_envelope, error_response, json_response
from .facade import Facade
from .openapi import openapi_document
from .ws import WebSocketEndpoint, WsSettings

log = logging.getLogger("agent.northbound.sensinact")

SYSTEM_PROVIDER = "sensiNact"
API_VERSION = 0.1  # the sensiNact REST generation this facade speaks (sensiNact's own system/version)
_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH"]


def ensure_system_provider(model: Model) -> None:
    """The built-in `sensiNact` provider: system/version and system/started (idempotent)."""
    fixed = {"kind": ResourceKind.PROPERTY, "mode": ValueMode.FIXED}
    model.ensure_resource(
        SYSTEM_PROVIDER,
        "system",
        "version",
        ResourceSpec(value_type("double"), **fixed),
        value=API_VERSION,
        source="sensinact",
    )
    model.ensure_resource(
        SYSTEM_PROVIDER,
        "system",
        "started",
        ResourceSpec(value_type("instant"), **fixed),
        value=time.time(),
        source="sensinact",
    )


def create_sensinact_app(model: Model, access: AccessControl, settings: RestSection | None = None) -> Flask:
    settings = settings or RestSection()
    ensure_system_provider(model)
    facade = Facade(model, access, settings)
    app = Flask("agent.northbound.sensinact")
    # No HTML redirects for '//' (or an encoded '/'): every answer of the facade is an envelope.
    app.url_map.merge_slashes = False
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["sensinact"] = facade
    document = dumps(openapi_document(settings))
    websockets = app.extensions["sensinact.ws"] = WebSocketEndpoint(facade, WsSettings.from_rest(settings))
    for upgrade in (True, False):  # Werkzeug routes upgrade requests only to websocket rules
        endpoint = "websocket" if upgrade else "websocket-refused"
        app.add_url_rule("/ws/sensinact", endpoint, websockets.view, methods=["GET"], websocket=upgrade)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        code = error.code or 500
        message = "Request body too large" if code == 413 else (error.name or "Error")
        return json_response(error_envelope("/", code, message))

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unhandled error in a REST request")
        return json_response(error_envelope("/", 500, "Internal error"))

    @app.get("/sensinact/openapi.json")
    def openapi() -> Response:
        return Response(document, mimetype="application/json")

    @app.route("/sensinact", methods=_METHODS, strict_slashes=False)
    @app.route("/sensinact/<path:rest>", methods=_METHODS)
    def sensinact(rest: str = "") -> Any:
        return _dispatch(facade, rest)

    @app.route("/sensinact.login", methods=["GET", "POST"])
    def login() -> Response:
        if not facade.guard.can_login:
            return json_response(error_envelope("/login", 404, "Token login is not enabled"))
        try:
            issued = facade.guard.login(request.headers, request.remote_addr)
        except RestError as error:
            return error_response("/login", error)
        response = json_response({"type": "TOKEN_CREATION", "uri": "/login", "statusCode": 200, **issued})
        response.headers["X-Auth-Token"] = issued["token"]
        return response

    return app


def close_sensinact_app(app: Flask) -> None:
    """Ends the facade's WebSockets, SSE streams and callback delivery threads."""
    websockets = app.extensions.get("sensinact.ws")
    if isinstance(websockets, WebSocketEndpoint):
        websockets.close()
    facade = app.extensions.get("sensinact")
    if isinstance(facade, Facade):
        facade.close()


def _body() -> Any:
    # POST bodies must be JSON: a browser cannot send that cross-site without a CORS preflight, so
    # a page on the vehicle's network cannot make a visitor's browser SET or ACT.
    raw = request.get_data(cache=False)
    if raw.strip() and request.mimetype != "application/json":
        raise RestError(415, "Expected Content-Type: application/json")
    if not raw.strip() and request.mimetype not in ("application/json", ""):
        raise RestError(415, "Expected Content-Type: application/json")
    return verbs.parse_json(raw)


def _attrs(args: Mapping[str, Any]) -> set[str]:
    values = request.args.getlist("attrs")
    return {part.strip() for value in values for part in value.split(",") if part.strip()}


def _dispatch(facade: Facade, rest: str) -> Any:
    uri = "/"
    method = request.method
    try:
        principal = facade.guard.principal(request.headers, request.remote_addr)
        if rest.strip("/") == "snapshot" and method == "POST":
            return json_response(facade.snapshot(principal, request.args, _body()))
        target = paths.parse(rest)
        uri = target.uri
        if method == "GET":
            if target.verb is None:
                if target.kind is paths.Kind.ROOT:
                    return json_response(facade.complete_list(principal, request.args, _attrs(request.args)))
                return json_response(facade.describe(principal, target, request.args))
            if target.verb == "GET":
                return json_response(facade.get(principal, target, request.args))
            if target.verb == "SUBSCRIBE":
                stream = facade.stream(principal, target)
                return Response(
                    stream,
                    mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
                )
            raise RestError(405, f"{target.verb} needs POST")
        if method == "POST":
            body = _body()
            handler = {
                "SET": facade.set,
                "ACT": facade.act,
                "SUBSCRIBE": facade.subscribe,
                "UNSUBSCRIBE": facade.unsubscribe,
            }.get(target.verb or "")
            if handler is not None:
                return json_response(handler(principal, target, body))
            if target.kind is paths.Kind.PROVIDER and target.long_form:
                return json_response(facade.create_provider(principal, target, body))
            raise RestError(405, "POST needs a verb: SET, ACT, SUBSCRIBE or UNSUBSCRIBE")
        raise RestError(405, f"{method} is not used by the sensiNact API")
    except RestError as error:
        return error_response(uri, error)
