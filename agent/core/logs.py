"""Structured logs to stderr: one JSON object a line, which journald stores and `journalctl -o cat` shows.

Extra fields given with `extra={...}` become keys of the object. Secrets are safe by construction: a
resolved secret is a config.Secret whose str() is '***', and nothing logs a payload.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class RecentLogs(logging.Handler):
    """Keeps the last lines in memory for the status page (formatted, so already free of secrets)."""

    def __init__(self, capacity: int = 200) -> None:
        super().__init__()
        from collections import deque

        self.lines: deque[str] = deque(maxlen=capacity)
        self.setFormatter(JsonFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # logging must never raise into the caller
            self.handleError(record)


def setup_logging(level: str = "info", fmt: str = "json", stream: TextIO | None = None) -> RecentLogs:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    recent = RecentLogs()
    root.addHandler(handler)
    root.addHandler(recent)
    root.setLevel(level.upper())
    # Per-request access logs of the web server are noise in the journal.
    logging.getLogger("cheroot").setLevel(logging.WARNING)
    return recent


def installed_recent_logs() -> RecentLogs | None:
    """The RecentLogs handler setup_logging installed, if any (the status page shows its lines)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, RecentLogs):
            return handler
    return None
