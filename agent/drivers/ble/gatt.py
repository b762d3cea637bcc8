"""Connected GATT sensors: the Environmental Sensing Service (0x181A), by notifications.

`decode()` turns one characteristic value into a reading (the GATT Specification Supplement's formats:
temperature 0x2A6E sint16 in 0.01 °C, humidity 0x2A6F uint16 in 0.01 %, pressure 0x2A6D uint32 in 0.1 Pa).
`GattLink` keeps one peripheral connected: connect, subscribe to what the device has of those three, wait
for a drop, then reconnect after an exponential backoff (with jitter) that starts over once connected.
The client is a seam: bleak's BleakClient on the truck, a simulated peripheral in the demo.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from bleak.exc import BleakError

from ...core.runtime import Backoff
from ...core.runtime.supervisor import describe_error
from .bthome import ENV, ObjectType

log = logging.getLogger("agent.drivers.ble.gatt")


def uuid16(short: int) -> str:
    return f"0000{short:04x}-0000-1000-8000-00805f9b34fb"


ESS_SERVICE: Final = uuid16(0x181A)
TEMPERATURE: Final = uuid16(0x2A6E)
HUMIDITY: Final = uuid16(0x2A6F)
PRESSURE: Final = uuid16(0x2A6D)


@dataclass(frozen=True, slots=True)
class Characteristic:
    quantity: ObjectType  # the same shape (name, unit, range) a BTHome sensor of that quantity has
    unknown: bytes | None  # the specification's "value is not known"


# Pressure in hPa, as BTHome's, so a quantity has one unit in the model whichever radio brought it.
CHARACTERISTICS: Final[dict[str, Characteristic]] = {
    TEMPERATURE: Characteristic(
        ObjectType(0x2A6E, "temperature", ENV, 2, True, 0.01, "Cel", low=-273.15), b"\x00\x80"
    ),
    HUMIDITY: Characteristic(
        ObjectType(0x2A6F, "humidity", ENV, 2, False, 0.01, "%RH", low=0, high=100), b"\xff\xff"
    ),
    PRESSURE: Characteristic(ObjectType(0x2A6D, "pressure", ENV, 4, False, 0.001, "hPa"), None),
}


class GattError(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def decode(uuid: str, data: bytes | bytearray) -> tuple[ObjectType, float]:
    """One notification's value. Raises GattError: wrong_length, unknown_value, impossible_value."""
    characteristic = CHARACTERISTICS.get(uuid.lower())
    if characteristic is None:
        raise GattError("unknown_characteristic")
    quantity = characteristic.quantity
    if len(data) != quantity.size:
        raise GattError("wrong_length")
    if characteristic.unknown is not None and bytes(data) == characteristic.unknown:
        raise GattError("unknown_value")
    value = quantity.decode(bytes(data))
    if not quantity.possible(value):
        raise GattError("impossible_value")
    return quantity, float(value)


def encode(uuid: str, value: float) -> bytes:
    """A characteristic value as a peripheral sends it (simulators and tests)."""
    return CHARACTERISTICS[uuid].quantity.encode(value)


# --- the client seam --------------------------------------------------------------------------------


class GattClient(Protocol):
    """What GattLink needs of a client; bleak's BleakClient has exactly this."""

    async def connect(self) -> Any: ...
    async def disconnect(self) -> Any: ...
    async def start_notify(self, char_specifier: str, callback: Callable[[Any, bytearray], None]) -> None: ...

    @property
    def services(self) -> Any: ...


# address, disconnected callback, timeout -> an unconnected client
ClientFactory = Callable[[str, Callable[[Any], None], float], GattClient]
ReadingSink = Callable[[ObjectType, float], None]


def bleak_client_factory(adapter: str | None = None) -> ClientFactory:
    from bleak import BleakClient

    extra = {"adapter": adapter} if adapter else {}

    def factory(address: str, on_disconnect: Callable[[Any], None], timeout: float) -> GattClient:
        return BleakClient(address, disconnected_callback=on_disconnect, timeout=timeout, **extra)

    return factory


class GattLink:
    """Keeps one ESS peripheral connected and its readings flowing into `sink`."""

    def __init__(
        self,
        address: str,
        sink: ReadingSink,
        *,
        factory: ClientFactory,
        backoff: Backoff | None = None,
        connect_timeout: float = 20.0,
    ) -> None:
        self.address = address
        self._sink = sink
        self._factory = factory
        self._backoff = backoff or Backoff(1.0, 60.0)
        self._timeout = connect_timeout
        self.connected = False
        self.connects = 0
        self.readings = 0
        self.rejected: Counter[str] = Counter()
        self.last_error = ""

    async def run(self, stopping: asyncio.Event) -> None:
        """Until `stopping` is set. Radio and BlueZ errors are retried here; anything else is a bug and
        propagates to the driver (and so to the supervisor, which restarts the component)."""
        failures = 0
        while not stopping.is_set():
            try:
                await self._session(stopping)
                failures = 0  # the link was up: the next drop retries soon
            except (BleakError, GattError, OSError, TimeoutError) as error:
                self.last_error = describe_error(error)
                log.warning("GATT %s: %s", self.address, self.last_error)
            if stopping.is_set():
                return
            failures += 1
            await _wait(stopping, self._backoff.delay(failures))

    async def _session(self, stopping: asyncio.Event) -> None:
        dropped = asyncio.Event()
        client = self._factory(self.address, lambda _client: dropped.set(), self._timeout)
        try:
            await asyncio.wait_for(client.connect(), self._timeout)
            subscribed = 0
            for uuid in CHARACTERISTICS:
                if client.services.get_characteristic(uuid) is not None:
                    await client.start_notify(uuid, self._notified(uuid))
                    subscribed += 1
            if not subscribed:
                raise GattError("no Environmental Sensing characteristic to subscribe to")
            self.connected, self.last_error = True, ""
            self.connects += 1
            log.info("GATT %s: connected, %d characteristics", self.address, subscribed)
            await _first(dropped.wait(), stopping.wait())
            if dropped.is_set() and not stopping.is_set():
                self.last_error = "connection dropped"
                log.warning("GATT %s: connection dropped", self.address)
        finally:
            self.connected = False
            if not dropped.is_set():
                try:
                    await asyncio.wait_for(client.disconnect(), 5)
                except (BleakError, OSError, TimeoutError) as error:
                    log.debug("GATT %s: disconnect: %s", self.address, describe_error(error))

    def _notified(self, uuid: str) -> Callable[[Any, bytearray], None]:
        def callback(_characteristic: Any, data: bytearray) -> None:
            try:
                quantity, value = decode(uuid, data)
            except GattError as error:
                self.rejected[error.reason] += 1
                log.debug("GATT %s: %s refused: %s", self.address, quantity_name(uuid), error.reason)
                return
            self.readings += 1
            self._sink(quantity, value)

        return callback


def quantity_name(uuid: str) -> str:
    characteristic = CHARACTERISTICS.get(uuid)
    return characteristic.quantity.name if characteristic else uuid


async def _wait(stopping: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)


async def _first(*waits: Awaitable[Any]) -> None:
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
