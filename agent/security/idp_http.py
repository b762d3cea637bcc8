"""HTTP to the identity provider: bounded in time and size, TLS verified, no redirects.

Everything that can go wrong (refused connection, timeout, TLS failure, a redirect, an oversized or
non-JSON body) becomes an `IdPError` whose message is safe to log: it names the URL and the reason, never
a request body (which, for the password grant, holds a password).
"""

from __future__ import annotations

import base64
import json
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any


class IdPError(Exception):
    """The identity provider could not be asked, or answered something unusable."""


@dataclass(frozen=True, slots=True)
class HttpSettings:
    timeout: float = 5.0
    max_bytes: int = 1 << 20
    ca_file: str | None = None  # PEM bundle to trust instead of the system's
    allow_plain_http: bool = False  # http:// is otherwise refused (tests, or an IdP on the same host)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect could lead from https to http, or to a host we never meant to trust with a password.
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


class IdPHttp:
    def __init__(self, settings: HttpSettings) -> None:
        self.settings = settings
        context = ssl.create_default_context(cafile=settings.ca_file)
        self._opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=context), _NoRedirect()
        )

    def check_url(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        secure_enough = parts.scheme == "https" or (parts.scheme == "http" and self.settings.allow_plain_http)
        if secure_enough and parts.hostname:
            return
        raise IdPError(
            f"refusing IdP URL {_safe(url)}: expected https:// (http:// only with allow_plain_http)"
        )

    def get_json(self, url: str) -> Any:
        status, body = self._request(urllib.request.Request(url, headers={"Accept": "application/json"}))
        if status != 200:
            raise IdPError(f"{_safe(url)} answered HTTP {status}")
        return body

    def post_form(
        self, url: str, form: dict[str, str], *, basic: tuple[str, str] | None = None
    ) -> tuple[int, Any]:
        """POSTs an urlencoded form; returns (status, JSON body) for any status that came with a JSON body
        (a token endpoint answers 400/401 with an OAuth error object)."""
        headers = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
        if basic is not None:
            # RFC 6749 §2.3.1: client id and secret are form-urlencoded before the Basic encoding.
            pair = f"{urllib.parse.quote(basic[0], safe='')}:{urllib.parse.quote(basic[1], safe='')}"
            headers["Authorization"] = "Basic " + _b64(pair)
        data = urllib.parse.urlencode(form).encode()
        return self._request(urllib.request.Request(url, data=data, headers=headers, method="POST"))

    def _request(self, request: urllib.request.Request) -> tuple[int, Any]:
        url = request.full_url
        self.check_url(url)
        try:
            response = self._opener.open(request, timeout=self.settings.timeout)
        except urllib.error.HTTPError as error:
            response = error  # an HTTP status other than 2xx: its body may still be an OAuth error object
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise IdPError(f"cannot reach {_safe(url)}: {type(reason).__name__}") from None
        with response:
            status = response.status if response.status is not None else 0
            if 300 <= status < 400:
                raise IdPError(
                    f"{_safe(url)} answered a redirect (HTTP {status}); redirects are not followed"
                )
            return status, self._read_json(response, url)

    def _read_json(self, response: Any, url: str) -> Any:
        limit = self.settings.max_bytes
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > limit:
            raise IdPError(f"{_safe(url)} answered more than {limit} bytes")
        # The socket timeout bounds each read, not the whole body: a server dripping one byte at a time
        # would hold us for ever, so the body as a whole gets a deadline too.
        deadline = time.monotonic() + self.settings.timeout
        chunks: list[bytes] = []
        size = 0
        try:
            while chunk := response.read1(65536) if hasattr(response, "read1") else response.read(65536):
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise IdPError(f"{_safe(url)} answered more than {limit} bytes")
                if time.monotonic() > deadline:
                    raise IdPError(f"{_safe(url)} answered too slowly")
        except (OSError, ValueError) as error:
            raise IdPError(f"reading {_safe(url)} failed: {type(error).__name__}") from None
        body = b"".join(chunks)
        try:
            return json.loads(body)
        except (ValueError, RecursionError):  # RecursionError: absurdly nested arrays
            raise IdPError(f"{_safe(url)} answered something that is not JSON") from None


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _safe(url: str) -> str:
    """The URL without query or userinfo, for messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port else host
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, "", ""))
