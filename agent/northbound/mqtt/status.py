"""The device's retained status topic: "online" while connected, "offline" otherwise.

The last will (registered in CONNECT, published by the broker when the connection is lost without a
DISCONNECT) and a clean stop both leave a retained "offline", so a consumer subscribing at any time learns
the current state at once. All three are QoS 1 and retained. Status messages are not sealed: they are not
records (no uid/seq), and the will is fixed when the connection opens.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from .topics import status_topic


def _json(document: dict[str, object]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def _now() -> str:
    return datetime.fromtimestamp(time.time(), UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Status:
    topic: str
    device: str

    @classmethod
    def from_template(cls, template: str, device: str) -> Status:
        return cls(status_topic(template, device), device)

    def online(self) -> bytes:
        return _json({"device": self.device, "state": "online", "since": _now()})

    def stopped(self) -> bytes:
        return _json({"device": self.device, "state": "offline", "reason": "stopped", "since": _now()})

    def will(self) -> bytes:
        # No time: the broker sends it whenever the connection is lost, long after it was written.
        return _json({"device": self.device, "state": "offline", "reason": "connection lost"})
