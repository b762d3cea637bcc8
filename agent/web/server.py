"""A production WSGI server (cheroot, CherryPy's thread-pooled server) run inside the agent's process.

`serve()` is for embedding and tests: it starts a server on an address (port 0 picks a free one) and
returns a handle to stop it. `WsgiServer` is the same server as a supervised component of the runtime.

Connection takeover (WebSocket, agent.web.websocket): cheroot does not hand a WSGI app its socket, so the
server uses `UpgradeGateway`, which puts a `Takeover` under `environ[TAKEOVER]`. An app that answers
`101 Switching Protocols` after calling `environ[TAKEOVER].take_over(handler)` gets `handler(sock,
buffered)` called in the same server thread once the 101 is on the wire (`buffered`: bytes cheroot already
read past the request); the connection is closed when the handler returns. Each taken-over connection
holds its server thread for its whole life, and `ServerHandle.stop()` shuts their sockets down first.
Every other request, and a handler registered without a 101 answer, is served exactly as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable
from typing import Any

from cheroot import wsgi

from ..core.runtime import Component, State

WsgiApp = Callable[..., Any]
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 4 * 2**20
TAKEOVER = "msec.takeover"  # the environ key of a request's Takeover
TakeoverHandler = Callable[[socket.socket, bytes], None]

log = logging.getLogger("agent.web")


class Takeover:
    """The connection behind one request, for an app that switches protocols (answers 101)."""

    def __init__(self) -> None:
        self.handler: TakeoverHandler | None = None

    def take_over(self, handler: TakeoverHandler) -> None:
        """After the 101 answer is sent, `handler(sock, buffered)` owns the connection until it returns."""
        self.handler = handler


class UpgradeGateway(wsgi.Gateway_10):
    """cheroot's WSGI 1.0 gateway, plus `environ[TAKEOVER]` and the hand-over after a 101."""

    def get_environ(self) -> dict[str, Any]:
        environ = super().get_environ()
        environ[TAKEOVER] = Takeover()
        return environ

    def respond(self) -> None:
        super().respond()
        handler = self.env[TAKEOVER].handler
        req = self.req
        if handler is None or not req.status.startswith(b"101"):
            return
        req.close_connection = True  # cheroot closes the socket once the handler is done
        conn, buffered = req.conn, b""
        while conn.rfile.has_data():  # what cheroot read ahead belongs to the new protocol
            buffered += conn.rfile.read1(65536)
        taken: set[socket.socket] = req.server.taken_over
        taken.add(conn.socket)
        try:
            handler(conn.socket, buffered)
        except Exception:  # the client already has its 101: nothing can be answered, only logged
            log.exception("connection handler failed after switching protocols")
        finally:
            taken.discard(conn.socket)


class ServerHandle:
    def __init__(self, server: wsgi.Server, thread: threading.Thread) -> None:
        self._server = server
        self._thread = thread

    @property
    def host(self) -> str:
        return self._server.bind_addr[0]

    @property
    def port(self) -> int:
        return self._server.bind_addr[1]

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        for sock in list(self._server.taken_over):  # their handlers see the end of the stream and return
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._server.stop()
        self._thread.join(timeout)


def serve(
    app: WsgiApp, host: str = "127.0.0.1", port: int = 0, *, threads: int = 8, name: str = "msec-agent"
) -> ServerHandle:
    """Binds (raising OSError at once if the address is taken) and serves in a background thread."""
    # Bounded requests: a hostile client on the vehicle's network must not make the agent buffer megabytes.
    server = wsgi.Server(
        (host, port), app, numthreads=threads, server_name=name, timeout=10, accepted_queue_timeout=1
    )
    server.max_request_header_size = MAX_HEADER_BYTES
    server.max_request_body_size = MAX_BODY_BYTES
    server.gateway = UpgradeGateway
    server.taken_over = set()  # sockets handed to a protocol handler, shut down by ServerHandle.stop()
    server.prepare()  # binds now, so the caller learns about a busy port here and the real port is known
    thread = threading.Thread(target=server.serve, name=f"wsgi:{host}:{port}", daemon=True)
    thread.start()
    return ServerHandle(server, thread)


class WsgiServer(Component):
    """Serves a WSGI app for the life of the agent; a crashed server thread is reported and restarted."""

    critical = False  # the agent collects and publishes without its local web server

    def __init__(self, app: WsgiApp, host: str, port: int, *, threads: int = 8, name: str = "http") -> None:
        super().__init__(name)
        self.app, self.host, self.port, self.threads = app, host, port, threads
        self.handle: ServerHandle | None = None

    async def start(self) -> None:
        self.handle = await asyncio.to_thread(serve, self.app, self.host, self.port, threads=self.threads)
        self.set_health(State.OK, f"listening on {self.handle.url}")

    async def run(self) -> None:
        while not await self.wait_stopping(1.0):
            if self.handle is None or not self.handle.running:
                raise RuntimeError("the HTTP server thread stopped")

    async def stop(self) -> None:
        await super().stop()
        if self.handle is not None:
            handle, self.handle = self.handle, None
            await asyncio.to_thread(handle.stop)
