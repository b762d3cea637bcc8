"""RFC 6455 WebSocket connections over wsproto, for apps served by agent.web.server (cheroot).

Two halves:
  - `accept_headers(environ)` checks an upgrade request and gives the headers of its 101 answer, or raises
    `HandshakeError` with the status to answer instead: 405 not GET, 400 malformed (not HTTP/1.1, no
    `Connection: Upgrade`, a bad `Sec-WebSocket-Key`, a body), 426 no `Upgrade: websocket` or a version
    other than 13, 403 an Origin the `origin_allowed` hook refuses (default: none or the same host).
  - `WebSocket(sock, buffered)` is the open connection, once the app took it over (environ[TAKEOVER]):
    `receive()` returns whole text (str) or binary (bytes) messages and None once closed; `send_text()`,
    `send_bytes()` and `close()` may be called from other threads. It answers pings, sends a ping
    (`liveness-check`) after `ping_interval` seconds of silence and drops a peer that stays silent another
    interval, refuses messages over `max_message_bytes` (close 1009), closes with 1001 after `lifetime`
    seconds, and waits at most `close_timeout` for the peer's close frame. No extensions, no subprotocols.

    ws = WebSocket(sock, buffered, max_message_bytes=65536)
    while (message := ws.receive()) is not None:
        ws.send_text(message)
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, Ping, Pong, TextMessage
from wsproto.utilities import LocalProtocolError, generate_accept_token

log = logging.getLogger("agent.web.websocket")

VERSION = "13"
NORMAL, GOING_AWAY, UNSUPPORTED_DATA, POLICY, TOO_BIG, INTERNAL, TRY_AGAIN = (
    1000,
    1001,
    1003,
    1008,
    1009,
    1011,
    1013,
)
OriginCheck = Callable[[str, Mapping[str, Any]], bool]


class HandshakeError(Exception):
    """An upgrade request refused before switching protocols; answer `status` with `headers`."""

    def __init__(self, status: int, message: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


class ConnectionClosed(Exception):
    """Sending on a WebSocket that is closing, closed or lost."""


def _tokens(value: str | None) -> set[str]:
    return {part.strip().lower() for part in (value or "").split(",") if part.strip()}


def same_origin(origin: str, environ: Mapping[str, Any]) -> bool:
    """The default Origin check: the page was served by the host the client connects to."""
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return False
    return bool(netloc) and netloc.lower() == str(environ.get("HTTP_HOST", "")).lower()


def accept_headers(
    environ: Mapping[str, Any], *, origin_allowed: OriginCheck | None = same_origin
) -> list[tuple[str, str]]:
    """The headers of the 101 answer to this upgrade request, or HandshakeError (see the module)."""
    upgrade_required = (("Upgrade", "websocket"), ("Sec-WebSocket-Version", VERSION))
    if environ.get("REQUEST_METHOD") != "GET":
        raise HandshakeError(405, "A WebSocket handshake is a GET", (("Allow", "GET"),))
    upgrade = environ.get("HTTP_UPGRADE")
    if upgrade is None:
        raise HandshakeError(426, "This is a WebSocket endpoint: Upgrade: websocket", upgrade_required)
    if "websocket" not in _tokens(upgrade):
        raise HandshakeError(400, "Upgrade must be websocket")
    if environ.get("SERVER_PROTOCOL") not in ("HTTP/1.1", "HTTP/1.2", "HTTP/1.3", "HTTP/1.9"):
        raise HandshakeError(400, "A WebSocket handshake needs HTTP/1.1")
    if "upgrade" not in _tokens(environ.get("HTTP_CONNECTION")):
        raise HandshakeError(400, "Connection must include Upgrade")
    if environ.get("HTTP_SEC_WEBSOCKET_VERSION", "").strip() != VERSION:
        raise HandshakeError(
            426, f"Unsupported WebSocket version (this server speaks {VERSION})", upgrade_required
        )
    key = environ.get("HTTP_SEC_WEBSOCKET_KEY", "").strip()
    try:
        valid_key = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid_key = False
    if not valid_key:
        raise HandshakeError(400, "Sec-WebSocket-Key must be 16 bytes in base64")
    if environ.get("HTTP_TRANSFER_ENCODING") or environ.get("CONTENT_LENGTH", "0") not in ("", "0"):
        raise HandshakeError(400, "A WebSocket handshake has no body")
    origin = environ.get("HTTP_ORIGIN") or environ.get("HTTP_SEC_WEBSOCKET_ORIGIN")
    if origin is not None and origin_allowed is not None and not origin_allowed(origin, environ):
        raise HandshakeError(403, "Origin not allowed")
    accept = generate_accept_token(key.encode("ascii")).decode("ascii")
    return [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Accept", accept)]


class WebSocket:
    """One open server-side WebSocket on a blocking socket: one reader thread, any number of senders."""

    def __init__(
        self,
        sock: socket.socket,
        buffered: bytes = b"",
        *,
        max_message_bytes: int = 1 << 20,
        ping_interval: float = 15.0,
        close_timeout: float = 2.0,
        lifetime: float | None = None,
        ping_payload: bytes = b"liveness-check",
    ) -> None:
        self._sock = sock
        self._proto = Connection(ConnectionType.SERVER)
        self._lock = threading.Lock()  # wsproto's state and the socket's write side
        self._events: deque[Event] = deque()
        self._parts: list[Any] = []
        self._size = 0
        self._too_big = False  # discarding the rest of a message over the limit
        self._silent = False  # a liveness ping is out and nothing came back yet
        self._done = False
        self._closing_at: float | None = None
        self.max_message_bytes = max_message_bytes
        self.ping_interval = ping_interval
        self.close_timeout = close_timeout
        self.ping_payload = ping_payload
        self.expires_at = time.monotonic() + lifetime if lifetime is not None else None
        self.close_code: int | None = None  # the peer's close code, or ours when we closed first
        self.close_reason: str | None = None
        if buffered:
            self._feed(buffered)

    @property
    def open(self) -> bool:
        return not self._done and self._proto.state is ConnectionState.OPEN

    @property
    def closed(self) -> bool:
        return self._done

    # --- sending (any thread) ------------------------------------------------------------------------

    def send_text(self, text: str) -> None:
        self._send(TextMessage(data=text))

    def send_bytes(self, data: bytes) -> None:
        self._send(BytesMessage(data=data))

    def ping(self, payload: bytes = b"") -> None:
        self._send(Ping(payload=payload))

    def close(self, code: int = NORMAL, reason: str = "") -> None:
        """Starts the closing handshake (or answers the peer's); receive() ends it. Never raises."""
        with self._lock:
            if self._done or self._proto.state not in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
                return
            if self.close_code is None:
                self.close_code, self.close_reason = code, reason
            try:
                data = self._proto.send(CloseConnection(code=code, reason=reason or None))
                self._sock.sendall(data)
            except (OSError, LocalProtocolError):
                self._abort_locked()
                return
            if self._proto.state is ConnectionState.CLOSED:  # we answered the peer's close
                self._abort_locked()
                return
            self._closing_at = time.monotonic()  # the reader now waits at most close_timeout for the answer

    def abort(self) -> None:
        """Drops the connection without a closing handshake (a blocked receive() returns None)."""
        with self._lock:
            self._abort_locked()

    def _abort_locked(self) -> None:
        self._done = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def _send(self, event: Event) -> None:
        with self._lock:
            if self._done or self._proto.state is not ConnectionState.OPEN:
                raise ConnectionClosed("the WebSocket is closed")
            try:
                self._sock.sendall(self._proto.send(event))
            except (OSError, LocalProtocolError) as error:  # a partial frame may be out: the stream is lost
                self._abort_locked()
                raise ConnectionClosed(str(error) or "the connection was lost") from None

    # --- receiving (one thread) ----------------------------------------------------------------------

    def receive(self) -> str | bytes | None:
        """The next whole message, or None once the connection is closed or lost."""
        while True:
            while self._events:
                message = self._handle(self._events.popleft())
                if message is not None:
                    return message
            if self._done:
                return None
            data = self._read()
            if data is None:
                self.abort()
                return None
            self._feed(data)

    def _feed(self, data: bytes) -> None:
        with self._lock:
            if self._proto.state is ConnectionState.CLOSED:
                return
            self._proto.receive_data(data)
            self._events.extend(self._proto.events())

    def _read(self) -> bytes | None:
        """Bytes from the peer; None when it is gone, silent too long or late with its close frame."""
        while not self._done:
            now = time.monotonic()
            if self._closing_at is not None and now - self._closing_at >= self.close_timeout:
                return None
            if self.expires_at is not None and now >= self.expires_at and self._closing_at is None:
                self.close(GOING_AWAY, "Session expired")
                continue
            wait = self.close_timeout if self._closing_at is not None else self.ping_interval
            if self.expires_at is not None and self._closing_at is None:
                wait = min(wait, max(0.01, self.expires_at - now))
            try:
                self._sock.settimeout(wait)
                data = self._sock.recv(65536)
            except TimeoutError:
                if self._closing_at is not None or (
                    self.expires_at is not None and time.monotonic() >= self.expires_at
                ):
                    continue
                if self._silent:
                    log.info("WebSocket peer silent for %.0fs: dropped", 2 * self.ping_interval)
                    return None
                self._silent = True
                with contextlib.suppress(ConnectionClosed):
                    self.ping(self.ping_payload)
                continue
            except OSError:
                return None
            if not data:
                return None
            self._silent = False
            return data
        return None

    def _handle(self, event: Event) -> str | bytes | None:
        if isinstance(event, TextMessage | BytesMessage):
            if self._proto.state is not ConnectionState.OPEN:
                return None  # data after our close frame is dropped
            if not self._too_big:
                self._size += len(event.data.encode() if isinstance(event.data, str) else event.data)
                if self._size > self.max_message_bytes:
                    self._too_big = True
                    self._parts = []
                    self.close(TOO_BIG, f"Message over {self.max_message_bytes} bytes")
                else:
                    self._parts.append(event.data)
            if not event.message_finished:
                return None
            parts, self._parts, self._size, too_big = self._parts, [], 0, self._too_big
            self._too_big = False
            if too_big:
                return None
            return "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)
        if isinstance(event, Ping):
            with contextlib.suppress(ConnectionClosed):
                self._send(Pong(payload=event.payload))
            return None
        if isinstance(event, CloseConnection):
            if self.close_code is None:
                self.close_code, self.close_reason = event.code, event.reason
            if self._proto.state is ConnectionState.REMOTE_CLOSING:
                self.close(event.code if event.code not in (1005, 1006) else NORMAL)  # echo, then done
                self.abort()
            elif self._proto.state is ConnectionState.OPEN:  # wsproto could not parse the stream
                log.info("WebSocket protocol error: %s", event.reason)
                self.close_code = None
                self.close(event.code, (event.reason or "")[:120])
            else:  # the answer to our close
                self.abort()
            return None
        return None  # Pong: the peer is alive (any bytes received said so already)
