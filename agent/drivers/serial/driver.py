"""The serial driver: a port, a protocol, and the model updates they produce.

Bytes are read and parsed on the port's thread (see port.py) and written to the model from there: the
model is thread-safe, and a lossless subscriber applying backpressure then holds up this thread, never the
event loop. The component's run() only watches the reader and keeps the health detail fresh.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import threading
import time
from pathlib import Path

from ...core.model import InvalidValue, Model, ResourceKind, ResourceSpec, ValueMode, value_type
from ...core.runtime import Component
from ...core.runtime.component import State
from ..common import Backoff, Rejected, Rejections
from .config import SerialConfig
from .port import PortReader, PortSettings
from .protocols import Reading, make_protocol
from .simulator import SOURCES, Simulator

log = logging.getLogger("agent.drivers.serial")

HEALTH_REFRESH = 1.0  # seconds between health detail refreshes (counts change far more often)


class SerialDriver(Component):
    critical = False  # a missing sensor must not stop the truck reporting the others

    def __init__(self, config: SerialConfig, model: Model) -> None:
        super().__init__(f"driver:{config.id}")
        self.config = config
        self.model = model
        self.protocol = make_protocol(config)
        self.rejected = Rejections(logging.getLogger(f"agent.drivers.serial.{config.id}"))
        self.readings = 0
        self._lock = threading.Lock()  # one protocol state, fed by one reader at a time
        self._link = "starting"
        self.reader: PortReader | None = None
        self.simulator: Simulator | None = None

    async def start(self) -> None:
        self.declare()
        c = self.config
        port = c.port
        if c.simulate:
            link = Path(tempfile.mkdtemp(prefix=f"msec-{c.id}-")) / "tty"
            self.simulator = Simulator(str(link), SOURCES[c.protocol](None), c.simulate_rate).start()
            port = str(link)
        assert port is not None  # the config requires a port unless simulated
        settings = PortSettings(port, c.baudrate, c.bytesize, c.parity, c.stopbits)
        self.reader = PortReader(
            settings,
            self.feed,
            self._on_state,
            backoff=Backoff(c.reconnect_initial, c.reconnect_max),
            name=c.id,
        )
        self.reader.start()

    def declare(self) -> None:
        """Adds the provider and the resources this driver writes (idempotent)."""
        c = self.config
        admin = None
        if self.protocol.owns_location:
            # The GPS owns the location: UPDATABLE, so a REST client cannot SET (forge) it.
            admin = {
                "location": ResourceSpec(value_type("geojson"), ResourceKind.PROPERTY, ValueMode.UPDATABLE)
            }
        self.model.add_provider(c.provider, admin=admin)
        if admin and self.model.get(c.provider, "admin", "location").mode is not ValueMode.UPDATABLE:
            # The provider was made before us (another driver, a model file) with a client-settable
            # location: GPS fixes still land, but declare it UPDATABLE there to stop forged positions.
            log.warning("%s: %s/admin/location is settable by clients", c.id, c.provider)
        for (service, resource), spec in self.protocol.specs.items():
            self.model.ensure_resource(c.provider, service, resource, spec)

    async def run(self) -> None:
        while not await self.wait_stopping(HEALTH_REFRESH):
            reader = self.reader
            if reader is not None and reader.error is not None:
                raise RuntimeError(f"serial reader failed: {reader.error!r}")
            self._refresh_health()

    async def stop(self) -> None:
        await super().stop()
        reader, self.reader = self.reader, None
        if reader is not None:
            await asyncio.to_thread(reader.stop)
            with self._lock:
                self.protocol.reset()  # a stop, not a fault: the partial frame is not counted
        simulator, self.simulator = self.simulator, None
        if simulator is not None:
            await asyncio.to_thread(simulator.stop)
            shutil.rmtree(Path(simulator.device.link).parent, ignore_errors=True)

    # --- called on the reader's thread -------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Parses bytes and applies what they hold; public so that tests and benchmarks can drive it."""
        now = time.time()
        with self._lock:
            results = list(self.protocol.feed(data))
        for result in results:
            if isinstance(result, Rejected):
                self.rejected.count(result)
            else:
                self._apply(result, now)

    def _apply(self, reading: Reading, now: float) -> None:
        provider = self.config.provider
        try:
            for service, resource, value in reading.updates:
                self.model.update(provider, service, resource, value, timestamp=now)
        except InvalidValue as error:  # the parsers check first; this is the last line of defence
            self.rejected.count(Rejected("invalid", str(error)))
            return
        self.readings += 1

    def _on_state(self, connected: bool, detail: str) -> None:
        if connected:
            log.info("%s: %s", self.config.id, detail)
        else:
            self._reset_protocol()
            log.warning("%s: %s", self.config.id, detail)
        self._link = detail
        self._refresh_health(connected)

    def _reset_protocol(self) -> None:
        with self._lock:
            partial = self.protocol.reset()
        if partial is not None:
            self.rejected.count(partial)

    # --- health ------------------------------------------------------------------------------------

    def _refresh_health(self, connected: bool | None = None) -> None:
        if connected is None:
            connected = self.reader is not None and self.reader.connected
        detail = self._link
        if self.rejected.total:
            detail += f"; rejected {self.rejected.summary()}"
        self.set_health(State.OK if connected else State.DEGRADED, detail)

    def stats(self) -> dict[str, object]:
        """Counters for metrics and the status page."""
        reader = self.reader
        return {
            "readings": self.readings,
            "rejected": dict(self.rejected),
            "connected": bool(reader and reader.connected),
            "connects": reader.connects if reader else 0,
            "disconnects": reader.disconnects if reader else 0,
            "bytes_read": reader.bytes_read if reader else 0,
        }
