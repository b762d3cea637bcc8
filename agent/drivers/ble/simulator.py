"""The simulated radio: BTHome sensors and ESS peripherals that speak the real wire formats.

Used by `backend = "simulated"` (the demo on a laptop without Bluetooth, CI) and by tests and the benchmark.
Frames are built with the BTHome encoder (encrypted with the device's bind key where it has one) and go
through the driver's real receive path; GATT values are encoded as a peripheral would and reach GattLink's
real notification handler. Only the radio is missing.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .bthome import encode_encrypted, encode_plain
from .gatt import CHARACTERISTICS, HUMIDITY, PRESSURE, TEMPERATURE, encode
from .scanner import AdvertisementSink

# BTHome object ids the simulated sensors send: packet id, battery, temperature, humidity, pressure.
PACKET, BATTERY, TEMP, HUM, PRES = 0x00, 0x01, 0x02, 0x03, 0x04


@dataclass(frozen=True, slots=True)
class SimulatedSensor:
    address: str
    key: bytes | None = None


def weather(now: float, rnd: random.Random) -> tuple[float, float, float]:
    """Plausible (temperature °C, humidity %, pressure hPa) drifting slowly with noise."""
    temperature = 18 + 4 * math.sin(now / 600) + rnd.gauss(0, 0.1)
    humidity = min(100.0, max(0.0, 60 + 10 * math.cos(now / 900) + rnd.gauss(0, 0.5)))
    pressure = 1013 + 5 * math.sin(now / 3600) + rnd.gauss(0, 0.2)
    return round(temperature, 2), round(humidity, 2), round(pressure, 2)


class SimulatedAdvertisementSource:
    mode = "simulated"

    def __init__(
        self,
        sink: AdvertisementSink,
        sensors: list[SimulatedSensor],
        interval: float,
        seed: int | None = None,
    ) -> None:
        self._sink = sink
        self._sensors = sensors
        self._interval = interval
        self._random = random.Random(seed)
        self._task: asyncio.Task[None] | None = None
        # A real sensor's counter survives our restarts; a clock-based start keeps it increasing too.
        self._counter = int(time.time())

    def frame(self, sensor: SimulatedSensor, now: float) -> bytes:
        temperature, humidity, pressure = weather(now, self._random)
        self._counter += 1
        objects: list[tuple[int, float]] = [
            (BATTERY, 87),
            (TEMP, temperature),
            (HUM, humidity),
            (PRES, pressure),
        ]
        if sensor.key is None:
            return encode_plain([(PACKET, self._counter % 256), *objects])
        return encode_encrypted(objects, key=sensor.key, address=sensor.address, counter=self._counter)

    def advertise_once(self) -> None:
        now = time.time()
        for sensor in self._sensors:
            self._sink(sensor.address, self.frame(sensor, now), -60 + self._random.randint(-15, 5))

    async def _loop(self) -> None:
        while True:
            self.advertise_once()
            await asyncio.sleep(self._interval)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="ble-simulated-advertiser")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class _Services:
    def get_characteristic(self, uuid: str) -> object | None:
        return uuid if uuid in CHARACTERISTICS else None


class SimulatedPeripheral:
    """A GattClient whose peripheral notifies ESS values every `interval` seconds."""

    def __init__(
        self, address: str, on_disconnect: Callable[[Any], None], interval: float, rnd: random.Random
    ) -> None:
        self.address = address
        self._on_disconnect = on_disconnect
        self._interval = interval
        self._random = rnd
        self._callbacks: dict[str, Callable[[Any, bytearray], None]] = {}
        self._task: asyncio.Task[None] | None = None
        self.services = _Services()
        self.is_connected = False

    async def connect(self) -> bool:
        self.is_connected = True
        self._task = asyncio.create_task(self._notify_loop(), name=f"ble-simulated-gatt-{self.address}")
        return True

    async def disconnect(self) -> bool:
        self.is_connected = False
        if self._task is not None:
            self._task.cancel()
        return True

    def drop(self) -> None:
        """The peripheral goes out of range."""
        if self._task is not None:
            self._task.cancel()
        self.is_connected = False
        self._on_disconnect(self)

    async def start_notify(self, char_specifier: str, callback: Callable[[Any, bytearray], None]) -> None:
        self._callbacks[char_specifier] = callback

    async def _notify_loop(self) -> None:
        while self.is_connected:
            values = dict(
                zip((TEMPERATURE, HUMIDITY, PRESSURE), weather(time.time(), self._random), strict=True)
            )
            for uuid, callback in list(self._callbacks.items()):
                callback(uuid, bytearray(encode(uuid, values[uuid])))
            await asyncio.sleep(self._interval)


def simulated_client_factory(
    interval: float, seed: int | None = None
) -> Callable[[str, Callable[[Any], None], float], SimulatedPeripheral]:
    rnd = random.Random(seed)

    def factory(address: str, on_disconnect: Callable[[Any], None], _timeout: float) -> SimulatedPeripheral:
        return SimulatedPeripheral(address, on_disconnect, interval, rnd)

    return factory
