"""Errors answered as JSON with a status and a message, never a stack trace or an HTML page."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger("agent.web")


def install_error_handlers(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        response = jsonify({"error": error.name, "statusCode": error.code})
        response.status_code = error.code or 500
        return response

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        log.exception("unhandled error in a web request")
        response = jsonify({"error": "Internal Server Error", "statusCode": 500})
        response.status_code = 500
        return response
