"""systemd's notify protocol (sd_notify): READY=1, WATCHDOG=1, STOPPING=1, STATUS=...

A datagram to the socket named by $NOTIFY_SOCKET; a leading '@' is an abstract socket. Written here rather
than pulled in as a dependency because it is a dozen lines and must never raise into the agent.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger("agent.runtime.sdnotify")


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        watchdog_usec = env.get("WATCHDOG_USEC", "")
        # systemd sets WATCHDOG_PID to the process it expects pings from; ignore a watchdog meant for another.
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        self.watchdog_interval: float | None = (
            int(watchdog_usec) / 1e6 / 2
            if watchdog_usec.isdigit() and int(watchdog_usec) > 0 and mine
            else None
        )

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def notify(self, *lines: str) -> bool:
        if not self._address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto("\n".join(lines).encode(), self._address)
            return True
        except OSError as error:  # systemd gone or socket unreadable: never fatal
            log.warning("sd_notify failed: %s", error)
            return False

    def ready(self, status: str = "") -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        return self.notify("STOPPING=1")

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={text}")
