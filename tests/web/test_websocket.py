"""WebSockets on the cheroot server (agent.web.server's takeover + agent.web.websocket) with a real client."""

from __future__ import annotations

import json
import socket
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import websockets
from flask import Flask, Response, request
from websockets.sync.client import connect
from wsproto.connection import Connection, ConnectionType
from wsproto.events import TextMessage

from agent.web import serve
from agent.web.server import TAKEOVER, ServerHandle
from agent.web.websocket import HandshakeError, WebSocket, accept_headers

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # the sample of RFC 6455 section 1.3


@dataclass
class Echo:
    handle: ServerHandle
    ended: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    codes: list[Any] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return self.handle.url.replace("http://", "ws://") + "/echo"

    def wait_ended(self) -> bool:
        return self.ended.acquire(timeout=10)


def echo_app(state: dict[str, Any], **options: Any) -> Flask:
    app = Flask("echo")

    @app.get("/")
    def index() -> str:
        return "hello"

    def serve_echo(sock: socket.socket, buffered: bytes) -> None:
        ws = WebSocket(sock, buffered, **options)
        try:
            while (message := ws.receive()) is not None:
                if message == "close-me":
                    ws.close(4000, "asked to")
                elif isinstance(message, str):
                    ws.send_text(message.upper())
                else:
                    ws.send_bytes(message[::-1])
        finally:
            state["echo"].codes.append(ws.close_code)
            state["echo"].ended.release()

    def view() -> Response:
        try:
            headers = accept_headers(request.environ)
        except HandshakeError as error:
            return Response(error.message, error.status, headers=list(error.headers))
        request.environ[TAKEOVER].take_over(serve_echo)
        return Response(status=101, headers=headers)

    for upgrade in (True, False):
        app.add_url_rule("/echo", f"echo-{upgrade}", view, websocket=upgrade)
    return app


@pytest.fixture
def echo_server(request: pytest.FixtureRequest) -> Iterator[Echo]:
    options = getattr(request, "param", {})
    state: dict[str, Any] = {}
    handle = serve(echo_app(state, **options), "127.0.0.1", 0, threads=6)
    state["echo"] = Echo(handle)
    yield state["echo"]
    handle.stop()


def raw_handshake(port: int, headers: dict[str, str], proto: str = "HTTP/1.1") -> bytes:
    lines = [f"GET /echo {proto}", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    body = "hello" if "Content-Length" in headers else ""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n" + body).encode())
        return sock.recv(4096)


GOOD = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Key": KEY,
    "Sec-WebSocket-Version": "13",
}


def test_echo_text_and_binary(echo_server: Echo) -> None:
    with connect(echo_server.ws_url, open_timeout=10) as ws:
        ws.send("hello")
        assert ws.recv(timeout=10) == "HELLO"
        ws.send(b"\x01\x02\x03")
        assert ws.recv(timeout=10) == b"\x03\x02\x01"
        ws.ping(b"are you there").wait(timeout=10)  # the server answers pings
    assert echo_server.wait_ended()
    assert echo_server.codes == [1000]


def test_ordinary_requests_still_work_alongside(echo_server: Echo) -> None:
    with connect(echo_server.ws_url, open_timeout=10) as ws:
        for _ in range(3):  # a keep-alive connection and new ones, while a WebSocket holds a thread
            with urllib.request.urlopen(echo_server.handle.url + "/", timeout=10) as response:
                assert response.read() == b"hello" and response.headers["Server"] == "msec-agent"
        ws.send("still")
        assert ws.recv(timeout=10) == "STILL"


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"Sec-WebSocket-Key": "short"}, b"400"),
        ({"Sec-WebSocket-Key": ""}, b"400"),
        ({"Connection": "keep-alive"}, b"400"),
        ({"Upgrade": "h2c"}, b"400"),
        ({"Sec-WebSocket-Version": "8"}, b"426"),
        ({"Sec-WebSocket-Version": ""}, b"426"),
        ({"Origin": "http://evil.example"}, b"403"),
        ({"Content-Length": "5"}, b"400"),
    ],
)
def test_bad_handshakes_are_refused_before_upgrading(echo_server: Echo, change: dict, status: bytes) -> None:
    headers = {**GOOD, **change}
    headers = {name: value for name, value in headers.items() if value != "" or name == "Sec-WebSocket-Key"}
    answer = raw_handshake(echo_server.handle.port, headers)
    assert answer.startswith(b"HTTP/1.1 " + status), answer
    if status == b"426":
        assert b"Sec-WebSocket-Version: 13" in answer


def test_plain_get_is_426_and_http10_is_400(echo_server: Echo) -> None:
    answer = raw_handshake(echo_server.handle.port, {})
    assert answer.startswith(b"HTTP/1.1 426") and b"Upgrade: websocket" in answer
    assert raw_handshake(echo_server.handle.port, GOOD, proto="HTTP/1.0").startswith(b"HTTP/1.1 400")


def test_same_origin_is_accepted(echo_server: Echo) -> None:
    origin = f"http://127.0.0.1:{echo_server.handle.port}"
    answer = raw_handshake(echo_server.handle.port, {**GOOD, "Origin": origin})
    assert answer.startswith(b"HTTP/1.1 101")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in answer  # RFC 6455 for this key
    assert echo_server.wait_ended()  # the client left without a close frame: the handler still ends


@pytest.mark.parametrize("echo_server", [{"max_message_bytes": 1000}], indirect=True)
def test_oversize_messages_close_with_1009(echo_server: Echo) -> None:
    with connect(echo_server.ws_url, open_timeout=10, max_size=None) as ws:
        ws.send("x" * 1000)
        assert ws.recv(timeout=10) == "X" * 1000
        ws.send("y" * 5000)
        with pytest.raises(websockets.ConnectionClosedError) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert echo_server.wait_ended()
    assert echo_server.codes == [1009]


@pytest.mark.parametrize("echo_server", [{"max_message_bytes": 1000}], indirect=True)
def test_oversize_fragmented_message_closes_with_1009(echo_server: Echo) -> None:
    with connect(echo_server.ws_url, open_timeout=10) as ws:
        ws.send(["a" * 600, "b" * 600])  # fragments, each under the limit, together over it
        with pytest.raises(websockets.ConnectionClosedError) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


def test_server_initiated_close(echo_server: Echo) -> None:
    with connect(echo_server.ws_url, open_timeout=10) as ws:
        ws.send("close-me")
        with pytest.raises(websockets.ConnectionClosed) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4000
    assert echo_server.wait_ended()


def test_a_frame_sent_with_the_handshake_is_not_lost(echo_server: Echo) -> None:
    client = Connection(ConnectionType.CLIENT)
    lines = [f"GET /echo HTTP/1.1\r\nHost: 127.0.0.1:{echo_server.handle.port}"]
    lines += [f"{name}: {value}" for name, value in GOOD.items()]
    payload = ("\r\n".join(lines) + "\r\n\r\n").encode() + client.send(TextMessage("early"))
    with socket.create_connection(("127.0.0.1", echo_server.handle.port), timeout=10) as sock:
        sock.sendall(payload)
        data = b""
        while b"EARLY" not in data:
            chunk = sock.recv(4096)
            assert chunk, data
            data += chunk
    assert data.startswith(b"HTTP/1.1 101")


def test_abrupt_disconnects_end_the_handler(echo_server: Echo) -> None:
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", echo_server.handle.port), timeout=10) as sock:
            lines = ["GET /echo HTTP/1.1\r\nHost: x"] + [f"{n}: {v}" for n, v in GOOD.items()]
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            assert sock.recv(4096).startswith(b"HTTP/1.1 101")
            sock.sendall(b"\x81\xfe\x10")  # half a frame header, then gone
        assert echo_server.wait_ended()
    assert echo_server.codes == [1006, 1006, 1006] or all(code in (None, 1006) for code in echo_server.codes)
    with connect(echo_server.ws_url, open_timeout=10) as ws:  # the threads are back in the pool
        ws.send("ok")
        assert ws.recv(timeout=10) == "OK"


def test_garbage_frames_close_with_a_protocol_error(echo_server: Echo) -> None:
    with socket.create_connection(("127.0.0.1", echo_server.handle.port), timeout=10) as sock:
        lines = ["GET /echo HTTP/1.1\r\nHost: x"] + [f"{n}: {v}" for n, v in GOOD.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 101")
        sock.sendall(b"\x8f\x80\x00\x00\x00\x00")  # opcode 0xF does not exist
        data = sock.recv(4096)
        assert data[:1] == b"\x88" and int.from_bytes(data[2:4], "big") == 1002
    assert echo_server.wait_ended()


@pytest.mark.parametrize("echo_server", [{"ping_interval": 0.2}], indirect=True)
def test_a_silent_peer_is_pinged_then_dropped(echo_server: Echo) -> None:
    with socket.create_connection(("127.0.0.1", echo_server.handle.port), timeout=10) as sock:
        lines = ["GET /echo HTTP/1.1\r\nHost: x"] + [f"{n}: {v}" for n, v in GOOD.items()]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\x89\x0eliveness-check" not in data:  # a ping frame with that payload
            chunk = sock.recv(4096)
            assert chunk, data
            data += chunk
        assert echo_server.wait_ended()  # never answered: dropped


def test_stopping_the_server_ends_open_websockets() -> None:
    state: dict[str, Any] = {}
    handle = serve(echo_app(state), "127.0.0.1", 0, threads=4)
    state["echo"] = echo = Echo(handle)
    with connect(echo.ws_url, open_timeout=10) as ws:
        ws.send("x")
        assert ws.recv(timeout=10) == "X"
        handle.stop()
        assert echo.wait_ended()
        assert not handle.running
        with pytest.raises(websockets.ConnectionClosed):
            ws.recv(timeout=10)


def test_accept_headers_is_a_pure_check() -> None:
    environ = {"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "h"}
    environ.update({f"HTTP_{k.upper().replace('-', '_')}": v for k, v in GOOD.items()})
    assert ("Sec-WebSocket-Accept", "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") in accept_headers(environ)
    with pytest.raises(HandshakeError) as refused:
        accept_headers({**environ, "REQUEST_METHOD": "POST"})
    assert refused.value.status == 405
    allow_all = accept_headers({**environ, "HTTP_ORIGIN": "http://other"}, origin_allowed=None)
    assert json.dumps(allow_all)
