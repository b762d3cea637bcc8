"""A production WSGI server (cheroot, CherryPy's thread-pooled server) run inside the agent's process.

`serve()` is for embedding and tests: it starts a server on an address (port 0 picks a free one) and
returns a handle to stop it. `WsgiServer` is the same server as a supervised component of the runtime.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from cheroot import wsgi

from ..core.runtime import Component, State

WsgiApp = Callable[..., Any]
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 4 * 2**20


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
