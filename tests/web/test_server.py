"""The embedded production WSGI server (cheroot) on loopback."""

from __future__ import annotations

import socket
import urllib.request

import pytest
from flask import Flask

from agent.web import serve


def hello_app() -> Flask:
    app = Flask("test")

    @app.get("/")
    def index() -> str:
        return "hello"

    return app


def test_serves_on_a_free_port_and_stops() -> None:
    handle = serve(hello_app(), "127.0.0.1", 0)
    try:
        assert handle.port > 0
        with urllib.request.urlopen(handle.url + "/", timeout=5) as response:
            assert response.read() == b"hello"
            assert response.headers["Server"] == "msec-agent"
    finally:
        handle.stop()
    assert not handle.running
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", handle.port), timeout=1)


def test_a_busy_port_fails_at_once() -> None:
    first = serve(hello_app(), "127.0.0.1", 0)
    try:
        with pytest.raises(OSError):
            serve(hello_app(), "127.0.0.1", first.port)
    finally:
        first.stop()


def test_garbage_on_the_socket_gets_a_400_and_the_server_lives_on() -> None:
    handle = serve(hello_app(), "127.0.0.1", 0)
    try:
        header_bomb = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-A: " + b"b" * 100_000 + b"\r\n\r\n"
        huge_body = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n\r\n"
        for garbage in (
            b"\x00\xff\xfe garbage\r\n\r\n",
            b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n",
            header_bomb,
            huge_body,
        ):
            with socket.create_connection(("127.0.0.1", handle.port), timeout=5) as sock:
                sock.sendall(garbage)
                answer = sock.recv(200)
                assert answer.startswith(b"HTTP/1.1 4"), answer
        with urllib.request.urlopen(handle.url + "/", timeout=5) as response:
            assert response.read() == b"hello"
    finally:
        handle.stop()
