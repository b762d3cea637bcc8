"""sensiNact response envelopes: `type`, `uri`, `statusCode` and a payload; errors as ERROR envelopes.

HTTP status equals `statusCode`, except 204 ("No value set"), sent as HTTP 200 so the body survives.
Errors carry both generations' fields: `error` (new) and `errors:[{message}]` (legacy), never a trace.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Response


class RestError(Exception):
    """An error answered as an ERROR envelope. The message is shown to the client: no secrets in it."""

    def __init__(
        self, status: int, message: str, *, challenges: Iterable[str] = (), retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.challenges = tuple(challenges)
        self.retry_after = retry_after


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):  # read-only views of snapshots
        return dict(value)
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def dumps(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"), allow_nan=False, ensure_ascii=False, default=_plain)


def envelope(type_: str, uri: str, status: int = 200, **payload: Any) -> dict[str, Any]:
    return {"type": type_, "uri": uri, "statusCode": status, **payload}


def error_envelope(uri: str, status: int, message: str) -> dict[str, Any]:
    return envelope("ERROR", uri, status, error=message, errors=[{"message": message}])


def json_response(body: Mapping[str, Any] | list[Any], status: int | None = None) -> Response:
    code = status if status is not None else body.get("statusCode", 200)  # type: ignore[union-attr]
    return Response(dumps(body), status=200 if code == 204 else code, mimetype="application/json")


def error_response(uri: str, error: RestError) -> Response:
    response = json_response(error_envelope(uri, error.status, error.message))
    for challenge in error.challenges:  # one WWW-Authenticate line per scheme
        response.headers.add("WWW-Authenticate", challenge)
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(max(1, math.ceil(error.retry_after)))
    return response
