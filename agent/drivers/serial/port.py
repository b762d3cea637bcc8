"""Reading a serial port on its own thread, surviving unplug and replug.

pyserial is blocking, so it never runs on the event loop: a thread opens the port, reads whatever arrived
(at most `chunk` bytes, waking every `poll` seconds to notice a stop) and hands the bytes to `on_data`.
When the device disappears (a USB adapter pulled, a pty closed) the read fails; the thread reports it,
closes the port and reopens it with exponential backoff until it is back or the reader is stopped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import serial

from ..common import Backoff

log = logging.getLogger("agent.drivers.serial")


@dataclass(frozen=True, slots=True)
class PortSettings:
    port: str
    baudrate: int = 9600
    bytesize: int = 8
    parity: str = "N"
    stopbits: int = 1


class PortReader:
    """`on_data(bytes)` for every read; `on_state(connected, detail)` on every connect and disconnect.

    Both are called on the reader's thread, which is why they must be thread-safe (the model is)."""

    def __init__(
        self,
        settings: PortSettings,
        on_data: Callable[[bytes], None],
        on_state: Callable[[bool, str], None],
        *,
        backoff: Backoff,
        poll: float = 0.1,
        chunk: int = 4096,
        name: str = "serial",
    ) -> None:
        self.settings = settings
        self.on_data = on_data
        self.on_state = on_state
        self.backoff = backoff
        self.poll = poll
        self.chunk = chunk
        self.name = name
        self.connects = 0
        self.disconnects = 0
        self.bytes_read = 0
        self.connected = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None  # a bug in on_data/on_state: the driver fails on it

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._main, name=f"{self.name}-reader", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Blocking: call it from a worker thread (asyncio.to_thread), not the loop."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _main(self) -> None:
        try:
            while not self._stop.is_set():
                port = self._open()
                if port is None:
                    continue
                try:
                    self._read_until_gone(port)
                finally:
                    port.close()
                # A port that opens but fails at once (a flapping cable) must not spin: back off here
                # too. The delay grows until data flows again.
                self._stop.wait(self.backoff.next_delay())
        except BaseException as error:  # recorded for the driver, which raises it on the loop
            self.error = error
            log.exception("serial reader %s crashed", self.name)

    def _open(self) -> serial.Serial | None:
        s = self.settings
        try:
            port = serial.Serial(
                s.port,
                s.baudrate,
                bytesize=s.bytesize,
                parity=s.parity,
                stopbits=s.stopbits,
                timeout=self.poll,
                exclusive=True,  # two readers of one port would each get half of every frame
            )
        except (serial.SerialException, OSError, ValueError) as error:
            delay = self.backoff.next_delay()
            self.on_state(
                False,
                f"port {s.port} unavailable ({_short(error)}), retry {self.backoff.attempts} in {delay:.1f}s",
            )
            self._stop.wait(delay)
            return None
        self.connects += 1
        self.connected = True
        self.on_state(True, f"reading {s.port} at {s.baudrate} baud")
        return port

    def _read_until_gone(self, port: serial.Serial) -> None:
        while not self._stop.is_set():
            try:
                # in_waiting or 1: return as soon as anything arrived, else wait up to `poll`.
                data = port.read(min(self.chunk, max(1, port.in_waiting)))
            except (serial.SerialException, OSError) as error:
                self.connected = False
                self.disconnects += 1
                self.on_state(False, f"port {self.settings.port} lost ({_short(error)}), reconnecting")
                return
            if data:
                self.bytes_read += len(data)
                self.backoff.reset()  # the device talks: the next loss starts the backoff over
                self.on_data(data)


def _short(error: BaseException) -> str:
    return str(error).splitlines()[0][:120] if str(error) else type(error).__name__
