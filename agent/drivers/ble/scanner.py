"""Hearing BTHome advertisements through bleak's BleakScanner (BlueZ on the truck).

Passive scanning sends no scan requests: it is quieter on the air and lighter on sensors' batteries, and
BTHome puts everything in the advertisement itself, so nothing is lost. On Linux, bleak scans passively
through BlueZ's advertisement monitor, which needs or_patterns (here: service data of UUID 0xFCD2) and
BlueZ >= 5.56 with kernel >= 5.10 (older BlueZ only with `bluetoothd --experimental`). Where it is missing,
"auto" falls back to active scanning and says so; "passive" fails instead (the supervisor retries).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal, Protocol

from bleak import BleakScanner
from bleak.args.bluez import BlueZScannerArgs, OrPattern
from bleak.assigned_numbers import AdvertisementDataType
from bleak.exc import BleakError

from .bthome import BTHOME_UUID, UUID16

log = logging.getLogger("agent.drivers.ble.scanner")

# address (upper case), service data of 0xFCD2 without the UUID, RSSI (dBm) when known
AdvertisementSink = Callable[[str, bytes, int | None], None]

BTHOME_PATTERN = OrPattern(0, AdvertisementDataType.SERVICE_DATA_UUID16, UUID16)


class AdvertisementSource(Protocol):
    """Where BTHome service data comes from: a radio, or the simulator."""

    mode: str  # what it really does ("passive", "active", "simulated"), for health and docs

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class BleakAdvertisementSource:
    def __init__(
        self,
        sink: AdvertisementSink,
        *,
        mode: Literal["auto", "passive", "active"] = "auto",
        adapter: str | None = None,
    ) -> None:
        self._sink = sink
        self._wanted = mode
        self._adapter = adapter
        self._scanner: BleakScanner | None = None
        self.mode = mode

    def _on_detection(self, device: Any, advertisement: Any) -> None:
        data = advertisement.service_data.get(BTHOME_UUID)
        if data is not None:
            self._sink(device.address.upper(), bytes(data), advertisement.rssi)

    def _scanner_for(self, mode: Literal["passive", "active"]) -> BleakScanner:
        extra: dict[str, Any] = {}
        if self._adapter:
            extra["adapter"] = self._adapter
        bluez: BlueZScannerArgs = {"or_patterns": [BTHOME_PATTERN]} if mode == "passive" else {}
        return BleakScanner(self._on_detection, scanning_mode=mode, bluez=bluez, **extra)

    async def start(self) -> None:
        if self._wanted in ("auto", "passive"):
            try:
                self._scanner = self._scanner_for("passive")
                await self._scanner.start()
                self.mode = "passive"
                return
            except BleakError as error:
                if self._wanted == "passive":
                    raise
                log.warning("passive scanning unavailable (%s): scanning actively", error)
        self._scanner = self._scanner_for("active")
        await self._scanner.start()
        self.mode = "active"

    async def stop(self) -> None:
        scanner, self._scanner = self._scanner, None
        if scanner is not None:
            try:
                await scanner.stop()
            except BleakError as error:  # the adapter went away: nothing left to stop
                log.debug("stopping the scanner: %s", error)
