"""Operational endpoints: /healthz for liveness and readiness, /metrics for Prometheus.

/healthz answers 200 while the agent is live and ready, 503 otherwise, with the per-component detail as
JSON either way, so both a load balancer and a person can read it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response, jsonify
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from .errors import install_error_handlers


def create_ops_app(
    health: Callable[[], dict[str, Any]], registry: CollectorRegistry, flask_app: Flask | None = None
) -> Flask:
    app = flask_app or Flask("agent.web.ops")
    install_error_handlers(app)

    @app.get("/healthz")
    def healthz() -> Response:
        report = health()
        response = jsonify(report)
        response.status_code = 200 if report.get("live") and report.get("ready") else 503
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(
            generate_latest(registry), mimetype=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"}
        )

    return app
