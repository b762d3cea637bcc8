"""One server, several WSGI apps: requests go to the app whose path prefix matches, else the default.

Each app keeps its own error handlers and envelopes (the REST facade answers sensiNact ERROR envelopes,
the rest plain JSON errors), which mounting everything on one Flask app would mix up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

WsgiApp = Callable[..., Iterable[bytes]]


def route_by_prefix(default: WsgiApp, routes: Mapping[str, WsgiApp]) -> WsgiApp:
    ordered = sorted(routes.items(), key=lambda item: len(item[0]), reverse=True)

    def dispatch(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        for prefix, app in ordered:
            if path == prefix or path.startswith(prefix + "/") or path.startswith(prefix + "."):
                return app(environ, start_response)
        return default(environ, start_response)

    return dispatch
