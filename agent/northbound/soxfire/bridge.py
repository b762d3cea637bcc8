"""SOX southbound bridge: remote SOX devices named in the configuration, mirrored into the model.

For each device: read its meta item (the transducers become resources of a provider), subscribe to its
`_meta` (shape changes) and `_data` (readings → model.update), and apply the data item already there.
Remote devices on another server are reached through ours (s2s), by naming their pubsub service.
The bridge is a consumer like any SOX client; its providers are excluded from our own publishing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from xml.etree import ElementTree as ET

from ...core.model import Model, ModelError
from ...core.runtime import Component, State
from . import mapping
from .session import Endpoint, SoxSession
from .wire import WireError, data_node, meta_node, parse_data, parse_meta, parse_value

log = logging.getLogger("agent.northbound.soxfire.bridge")

SOURCE = "soxfire-bridge"


@dataclass(frozen=True)
class MirroredDevice:
    device: str  # node prefix on the remote service
    provider: str  # provider in our model
    service: str  # pubsub service holding its nodes


class SoxBridge(Component):
    def __init__(
        self,
        model: Model,
        endpoint: Callable[[], Endpoint],
        devices: Sequence[MirroredDevice],
        *,
        name: str = "soxfire-bridge",
    ) -> None:
        super().__init__(name)
        self.model = model
        self.endpoint = endpoint
        self.devices = {(d.service, d.device): d for d in devices}
        self.session: SoxSession | None = None
        self.updates = 0
        self.rejected = 0
        # Items are applied by one worker, in arrival order, off the event loop (model writers may wait).
        self._queue: asyncio.Queue[tuple[MirroredDevice, str, ET.Element]] = asyncio.Queue()

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self.session = SoxSession(self.endpoint(), resource="bridge")
        await self.session.open()
        self.session.on_item(self._on_item)
        for device in self.devices.values():
            meta = await self.session.last_item(device.service, meta_node(device.device))
            if meta is not None:
                await asyncio.to_thread(self.apply_meta, device, meta)
            await self.session.subscribe(device.service, meta_node(device.device))
            await self.session.subscribe(device.service, data_node(device.device))
            data = await self.session.last_item(device.service, data_node(device.device))
            if data is not None:
                await asyncio.to_thread(self.apply_data, device, data)
        self.set_health(State.OK, f"mirroring {len(self.devices)} SOX device(s)")

    async def run(self) -> None:
        assert self.session is not None
        worker = asyncio.ensure_future(self._apply_queued())
        try:
            await self.session.lost.wait()
            if not self.stopping:
                await self.session.wait_lost()  # raises ConnectionLost: the supervisor reconnects us
        finally:
            worker.cancel()

    async def stop(self) -> None:
        await super().stop()
        session, self.session = self.session, None
        if session is not None:
            session.lost.set()  # run() returns through wait_lost
            await session.close()

    def _on_item(self, service: str, node: str, payload: ET.Element | None, _publisher: str | None) -> None:
        for suffix in ("_meta", "_data"):
            device = self.devices.get((service, node[: -len(suffix)])) if node.endswith(suffix) else None
            if device is not None and payload is not None:
                self._queue.put_nowait((device, suffix, payload))

    async def _apply_queued(self) -> None:
        while True:
            device, suffix, payload = await self._queue.get()
            apply = self.apply_meta if suffix == "_meta" else self.apply_data
            await asyncio.to_thread(apply, device, payload)

    def apply_meta(self, device: MirroredDevice, payload: ET.Element) -> None:
        try:
            meta = parse_meta(payload)
        except WireError as error:
            self.rejected += 1
            log.warning("meta item of SOX device %s ignored: %s", device.device, error)
            return
        self.model.add_provider(device.provider, friendly_name=meta.name or device.device, source=SOURCE)
        for transducer in meta.transducers:
            service, resource = mapping.split_transducer_id(transducer.id)
            try:
                self.model.ensure_resource(
                    device.provider, service, resource, mapping.resource_spec(transducer), source=SOURCE
                )
            except ModelError as error:  # the remote changed a transducer's type: keep what we have
                log.warning("transducer %s of %s not mirrored: %s", transducer.id, device.device, error)

    def apply_data(self, device: MirroredDevice, payload: ET.Element) -> None:
        try:
            data = parse_data(payload, now=time.time())
        except WireError as error:
            self.rejected += 1
            log.warning("data item of SOX device %s ignored: %s", device.device, error)
            return
        for value in data.values:
            service, resource = mapping.split_transducer_id(value.id)
            try:
                snapshot = self.model.get(device.provider, service, resource)
                parsed = parse_value(value.typed_value, snapshot.type.name)
                self.model.update(
                    device.provider, service, resource, parsed, timestamp=value.timestamp, source=SOURCE
                )
            except (ModelError, WireError) as error:
                self.rejected += 1
                log.warning("value of %s/%s not mirrored: %s", device.device, value.id, error)
            else:
                self.updates += 1
