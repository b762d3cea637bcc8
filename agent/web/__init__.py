"""Northbound web: the WSGI server and the operational endpoints (/healthz, /metrics).

The REST facade and the status page (their own issues) mount on the same server.
"""

from .ops import create_ops_app
from .server import WsgiServer, serve

__all__ = ["WsgiServer", "create_ops_app", "serve"]
