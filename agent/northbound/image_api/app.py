"""`POST /image`: the seed's GANonymizer API, served on the device.

Request: HTTP Basic (a `[[security.users]]` user whom the rules allow ACT on provider `anonymizer`,
service `image`), `Content-Type: application/json`, body `{"image": "<base64 JPEG or PNG>"}`.
Answer: `{"image": "<base64>"}`, the anonymized image in the format it came in.

Bad input gets a JSON error `{"error": "<what is wrong>", "statusCode": n}` and nothing else: 400 (not
JSON, not base64, not a JPEG/PNG, corrupt), 401/403/429 (who), 405, 411 (no Content-Length), 413 (body
over `max_body_bytes`, or an image declaring more than `max_pixels`: decompression bombs are refused from
the header), 415, and 503 with Retry-After when the anonymizer is unavailable (models refused:
fail-closed) or busy.
Still images are independent: the anonymizer's hold-over is reset before each.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from ...anonymizer import Anonymizer, AnonymizerUnavailable, ImageApiSection
from ...anonymizer.codec import ImageError, ImageTooLarge, decode, dimensions, encode
from ...security.access import AccessControl, Operation, Unauthenticated
from ...security.policy import IdPUnavailable
from ...security.ratelimit import RateLimited

log = logging.getLogger("agent.northbound.image_api")

PROVIDER, SERVICE = "anonymizer", "image"
RETRY_UNAVAILABLE = 30.0  # seconds between attempts to load refused models again


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


class ImageService:
    """One anonymizer for still images, created on first use, one request at a time."""

    def __init__(self, factory: Callable[[], Anonymizer], jpeg_quality: int, busy_timeout: float) -> None:
        self.factory, self.jpeg_quality, self.busy_timeout = factory, jpeg_quality, busy_timeout
        self.outcomes: Counter[int] = Counter()  # status code -> answers
        self._anonymizer: Anonymizer | None = None
        self._retry_at = 0.0
        self._lock = threading.Lock()

    def anonymize(self, data: bytes, max_pixels: int) -> bytes:
        _, width, height = dimensions(data)  # refused before decoding, and before waiting for the lock
        if width * height > max_pixels:
            raise ImageTooLarge(f"image of {width}x{height} pixels is larger than the {max_pixels} allowed")
        # One image decoded at a time too: concurrent requests must not multiply the memory held.
        if not self._lock.acquire(timeout=self.busy_timeout):
            raise ApiError(503, "the anonymizer is busy; try again", {"Retry-After": "1"})
        try:
            anonymizer = self._get()
            kind, image = decode(data, max_pixels=max_pixels)
            anonymizer.reset()  # a still image: no hold-over from the previous request
            result = anonymizer.process(image)
        finally:
            self._lock.release()
        return encode(result.image, kind, jpeg_quality=self.jpeg_quality)

    def _get(self) -> Anonymizer:
        if self._anonymizer is not None:
            return self._anonymizer
        wait = self._retry_at - time.monotonic()
        if wait > 0:
            raise ApiError(503, "the anonymizer is unavailable", {"Retry-After": str(int(wait) + 1)})
        try:
            self._anonymizer = self.factory()
        except AnonymizerUnavailable as error:
            self._retry_at = time.monotonic() + RETRY_UNAVAILABLE
            log.error("POST /image refused: anonymizer unavailable: %s", error)
            raise ApiError(
                503, "the anonymizer is unavailable", {"Retry-After": str(int(RETRY_UNAVAILABLE))}
            ) from None
        return self._anonymizer


def create_image_app(
    access: AccessControl,
    factory: Callable[[], Anonymizer],
    section: ImageApiSection,
    *,
    jpeg_quality: int = 90,
) -> Flask:
    app = Flask("agent.northbound.image_api")
    app.config["MAX_CONTENT_LENGTH"] = section.max_body_bytes
    service = ImageService(factory, jpeg_quality, section.busy_timeout)
    app.extensions["image_service"] = service

    @app.post("/image")
    def image() -> Response:
        _authorize(access)
        if request.mimetype != "application/json":
            raise ApiError(415, "expected Content-Type: application/json")
        if request.content_length is None:  # chunked: the WSGI stream would read as empty
            raise ApiError(411, "a Content-Length is required")
        if request.content_length > section.max_body_bytes:
            raise ApiError(413, f"the body is larger than {section.max_body_bytes} bytes")
        data = _image_bytes(request.get_data(cache=False))
        try:
            out = service.anonymize(data, section.max_pixels)
        except ImageTooLarge as error:
            raise ApiError(413, str(error)) from None
        except ImageError as error:
            raise ApiError(400, str(error)) from None
        return _json(200, {"image": base64.b64encode(out).decode("ascii")})

    @app.after_request
    def count(response: Response) -> Response:
        service.outcomes[response.status_code] += 1
        return response

    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
        return _json(error.status, {"error": error.message, "statusCode": error.status}, error.headers)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        message = f"the body is larger than {section.max_body_bytes} bytes" if status == 413 else error.name
        return _json(status, {"error": message, "statusCode": status})

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> Response:
        # The type only: a message could quote image data. Nothing of the request goes back.
        log.error("POST /image failed: %s", type(error).__name__)
        return _json(500, {"error": "Internal Server Error", "statusCode": 500})

    return app


def _authorize(access: AccessControl) -> None:
    try:
        principal = access.authenticate(request.headers, remote_addr=request.remote_addr)
    except RateLimited as error:
        raise ApiError(429, str(error), {"Retry-After": str(int(error.retry_after) + 1)}) from None
    except IdPUnavailable as error:
        raise ApiError(503, str(error)) from None
    except Unauthenticated as error:
        challenge = {"WWW-Authenticate": ", ".join(error.challenges)} if error.challenges else {}
        raise ApiError(401, str(error) or "authentication required", challenge) from None
    if principal.anonymous:
        raise ApiError(401, "authentication required", {"WWW-Authenticate": 'Basic realm="msec"'})
    if not access.allowed(principal, Operation.ACT, PROVIDER, SERVICE):
        raise ApiError(403, "not permitted to use the anonymizer")


def _image_bytes(body: bytes) -> bytes:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ApiError(400, 'the body is not JSON; expected {"image": "<base64>"}') from None
    if not isinstance(document, dict) or set(document) != {"image"}:
        raise ApiError(400, 'expected a JSON object with exactly one key, "image"')
    text = document["image"]
    if not isinstance(text, str) or not text:
        raise ApiError(400, '"image" must be a non-empty base64 string')
    try:
        # MIME-style encoders wrap lines: line breaks are the only leniency.
        return base64.b64decode(text.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, '"image" is not valid base64') from None
