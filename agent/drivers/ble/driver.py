"""The BLE driver component: BTHome advertisements and ESS GATT sensors into the model.

Each configured device maps, by address, to a provider. BTHome readings land in the service their quantity
belongs to (environment/temperature, power/battery, counter/count, state/motion) and the signal strength in
link/rssi; resources appear when a sensor first reports them. Advertisements from addresses not in the
config are ignored (a street is full of BLE devices) and only counted.

The radio is a seam chosen by `backend`: bleak on BlueZ, or the simulator, which feeds real BTHome frames and
ESS notification values through the same parsing and model code.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

from ...core.model import Model, ModelError, ResourceKind, ResourceSpec, ValueMode, value_type
from ...core.runtime import Backoff, Component, State
from ...security.secrets import SecretError, resolve_secret
from ..base import DriverPlugin
from .bthome import KEY_BYTES, BTHomeError, Decryptor, Frame, ObjectType, included_mac
from .config import BleConfig, BTHomeDevice, GattDevice, is_reference
from .gatt import ClientFactory, GattLink, bleak_client_factory
from .receiver import Receiver
from .scanner import AdvertisementSource, BleakAdvertisementSource
from .simulator import SimulatedAdvertisementSource, SimulatedSensor, simulated_client_factory

log = logging.getLogger("agent.drivers.ble")

RSSI_SPEC = ResourceSpec(value_type("int"), ResourceKind.SENSOR, ValueMode.UPDATABLE, {"unit": "dBm"})


class KeyProblem(Exception):
    """A bind key that cannot be used. The message names the reason, never the key."""


def load_key(device: BTHomeDevice) -> bytes | None:
    if device.bind_key is None:
        return None
    text = device.bind_key
    if is_reference(text):
        try:
            text = resolve_secret(text).reveal().strip()
        except SecretError as error:
            raise KeyProblem(str(error)) from None
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise KeyProblem("the bind key is not hex") from None
    if len(key) != KEY_BYTES:
        raise KeyProblem(f"the bind key is {len(key)} bytes, not {KEY_BYTES}")
    return key


def _spec(quantity: ObjectType) -> ResourceSpec:
    metadata = {"unit": quantity.unit} if quantity.unit else {}
    return ResourceSpec(value_type(quantity.kind), ResourceKind.SENSOR, ValueMode.UPDATABLE, metadata)


class BleDriver(Component):
    critical = False  # a missing adapter must not stop the rest of the truck

    def __init__(
        self,
        config: BleConfig,
        model: Model,
        *,
        source: AdvertisementSource | None = None,
        gatt_factory: ClientFactory | None = None,
    ) -> None:
        super().__init__(f"driver:{config.id}")
        self.config = config
        self.model = model
        self._source_override = source
        self._gatt_factory = gatt_factory
        self._source: AdvertisementSource | None = None
        # Receivers outlive restarts of the component: their counters are what rejects replays.
        self.receivers: dict[str, Receiver] = {}
        self._providers = {d.address: d.provider for d in (*config.devices, *config.gatt)}
        self._keys: dict[str, bytes | None] = {}
        self._created: set[tuple[str, str, str]] = set()
        self._logged: set[tuple[str, str]] = set()
        self.key_problems: dict[str, str] = {}  # address -> reason, for health and the status page
        self.ignored = 0  # BTHome advertisements from addresses not configured
        self.errors: Counter[str] = Counter()  # readings the model refused, internal errors
        self.links = [self._link(device) for device in config.gatt]

    # --- lifecycle ---------------------------------------------------------------------------------

    async def start(self) -> None:
        for device in (*self.config.devices, *self.config.gatt):
            self.model.add_provider(device.provider, friendly_name=device.friendly_name)
        self._load_receivers()
        if self._source_override is not None or self.config.devices:  # GATT only: no need to scan
            self._source = self._source_override or self._make_source()
            await self._source.start()
        self._refresh_health()

    async def run(self) -> None:
        tasks = [
            asyncio.create_task(link.run(self._stopping), name=f"gatt-{link.address}") for link in self.links
        ]
        try:
            while not self.stopping:
                for task in tasks:
                    if task.done() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]  # a bug in a link: supervisor restarts us
                self._refresh_health()
                await self.wait_stopping(1.0)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def stop(self) -> None:
        await super().stop()
        source, self._source = self._source, None
        if source is not None:
            await source.stop()

    def _load_receivers(self) -> None:
        for device in self.config.devices:
            if device.address in self.receivers:
                continue
            try:
                key = load_key(device)
            except KeyProblem as problem:
                self.key_problems[device.address] = str(problem)
                log.error("BLE %s (%s): bind key unusable: %s", device.address, device.provider, problem)
                continue
            self.key_problems.pop(device.address, None)
            self._keys[device.address] = key
            decryptor = Decryptor(key, device.address) if key else None
            self.receivers[device.address] = Receiver(device.address, decryptor)

    def _make_source(self) -> AdvertisementSource:
        if self.config.backend == "simulated":
            sensors = [SimulatedSensor(address, key) for address, key in self._keys.items()]
            sim = self.config.simulation
            return SimulatedAdvertisementSource(self.handle_advertisement, sensors, sim.interval, sim.seed)
        return BleakAdvertisementSource(
            self.handle_advertisement, mode=self.config.scanning_mode, adapter=self.config.adapter
        )

    def _link(self, device: GattDevice) -> GattLink:
        factory = self._gatt_factory
        if factory is None and self.config.backend == "simulated":
            factory = simulated_client_factory(self.config.simulation.interval, self.config.simulation.seed)
        elif factory is None:
            factory = bleak_client_factory(self.config.adapter)
        provider = device.provider
        return GattLink(
            device.address,
            lambda quantity, value: self._write(provider, quantity, quantity.name, value, time.time()),
            factory=factory,
            backoff=Backoff(device.reconnect_initial, device.reconnect_max),
            connect_timeout=device.connect_timeout,
        )

    @property
    def scanning(self) -> str:
        """passive, active, simulated; off when stopped or with no BTHome device to listen for."""
        return self._source.mode if self._source else "off"

    def _refresh_health(self) -> None:
        problems = [f"{address}: bind key unusable" for address in self.key_problems]
        problems += [
            f"{link.address}: {link.last_error or 'connecting'}" for link in self.links if not link.connected
        ]
        mode = self.scanning
        detail = f"scanning {mode}, {len(self.receivers)} BTHome, {len(self.links)} GATT"
        if problems:
            self.set_health(State.DEGRADED, f"{detail}; " + "; ".join(problems))
        else:
            self.set_health(State.OK, detail)

    # --- data path ---------------------------------------------------------------------------------

    def handle_advertisement(self, address: str, data: bytes, rssi: int | None) -> None:
        """The scanner's callback. Never raises: it runs inside bleak's D-Bus handler, which would only
        log and swallow an exception, so every outcome is counted here instead."""
        # A sensor with a random address names itself by the identity MAC it includes in the frame.
        receiver = self.receivers.get(included_mac(data) or address)
        if receiver is None:
            self.ignored += 1
            return
        try:
            frame = receiver.receive(data)
        except BTHomeError as error:
            self._note(receiver.address, error.reason)
            return
        except Exception:  # a parser bug must not take scanning down: count it, log it once with its trace
            self.errors["internal_error"] += 1
            log.exception("BLE %s: parser failed", receiver.address)
            return
        if frame is None:
            return
        for problem in frame.problems:
            self._note(receiver.address, problem)
        self._apply(receiver.address, frame, rssi)

    def _apply(self, address: str, frame: Frame, rssi: int | None) -> None:
        provider, now = self._providers[address], time.time()
        for reading in frame.readings:
            self._write(provider, reading.object, reading.name, reading.value, now)
        if rssi is not None:
            self._write_spec(provider, "link", "rssi", RSSI_SPEC, rssi, now)

    def _write(self, provider: str, quantity: ObjectType, name: str, value: Any, now: float) -> None:
        self._write_spec(provider, quantity.service, name, quantity, value, now)

    def _write_spec(
        self, provider: str, service: str, name: str, shape: ObjectType | ResourceSpec, value: Any, now: float
    ) -> None:
        key = (provider, service, name)
        try:
            if key not in self._created:  # the spec is only built (and checked by the model) once
                spec = shape if isinstance(shape, ResourceSpec) else _spec(shape)
                self.model.ensure_resource(provider, service, name, spec)
                self._created.add(key)
            self.model.update(provider, service, name, value, timestamp=now)
        except ModelError as error:  # e.g. a model file declared this resource with another shape
            self.errors["model_rejected"] += 1
            self._note(f"{provider}/{service}/{name}", "model_rejected", str(error))

    def _note(self, where: str, reason: str, detail: str = "") -> None:
        # Counted always (by the receiver or above); logged loudly once per source and reason, so a
        # flood of garbage cannot flood the log.
        text = f"{reason} ({detail})" if detail else reason
        if (where, reason) in self._logged:
            log.debug("BLE %s: %s", where, text)
            return
        self._logged.add((where, reason))
        log.warning(
            "BLE %s: data refused or partly used: %s (repeats are logged at debug level)", where, text
        )

    def stats(self) -> dict[str, Any]:
        """Counters for metrics and the status page."""
        return {
            "scanning": self.scanning,
            "ignored": self.ignored,
            "errors": dict(self.errors),
            "key_problems": sorted(self.key_problems),
            "bthome": {
                address: {
                    "accepted": r.accepted,
                    "duplicates": r.duplicates,
                    "rejected": dict(r.rejected),
                }
                for address, r in self.receivers.items()
            },
            "gatt": {
                link.address: {
                    "connected": link.connected,
                    "connects": link.connects,
                    "readings": link.readings,
                    "rejected": dict(link.rejected),
                }
                for link in self.links
            },
        }


def create(config: BleConfig, model: Model) -> BleDriver:
    return BleDriver(config, model)


PLUGIN = DriverPlugin(
    "ble",
    BleConfig,
    create,  # type: ignore[arg-type]
    "Bluetooth LE: BTHome v2 advertisements (plain and encrypted) and ESS GATT sensors, via bleak/BlueZ",
)
