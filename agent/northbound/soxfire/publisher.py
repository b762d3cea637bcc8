"""SoxPublisher: the outbox's readings, and the model's shape, published to SOXFire.

Every provider is a SOX device (nodes on the pubsub service, see nodes.py). Its meta item is published when
the connection starts and again whenever the provider's shape changes. Readings are taken from the outbox
in order (OutboxPublisher), grouped per provider into <data> items of several readings each, split under
the configured item size, and acknowledged in the outbox only once every item's IQ result came back.

Order: items of one provider are published one after the other, each after the previous one's result, so
a failure can never let a later reading of a resource overtake an earlier one; different providers go
concurrently (one stream, so the server still sees them in order). Any failure raises: the supervisor
restarts the component with backoff, the unacknowledged records are sent again (consumers drop duplicates
by the uid in rawValue).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Coroutine
from typing import Any

from ...core.model import ADMIN, EventType, Model, ModelEvent, UnknownElement
from ...core.outbox import Outbox, Record
from ...core.runtime import State
from ...security.sealer import Sealer
from ..publisher import OutboxPublisher
from . import frames, mapping, upload
from .actuation import Actuator
from .config import Frames
from .nodes import NodePolicy, ensure_device
from .session import Endpoint, PubsubError, SoxSession, tls_context
from .wire import DATA_OVERHEAD, TransducerValue, build_data, build_meta, data_node, meta_node, value_size

log = logging.getLogger("agent.northbound.soxfire.publisher")

# Refusals that mean "this item is too big for the server" (XEP-0060 §7.1.3.4: not-acceptable +
# payload-too-big; Openfire answers policy-violation): split it and try the halves.
_TOO_BIG = {"not-acceptable", "policy-violation", "resource-constraint"}


def _shape_change(event: ModelEvent) -> bool:
    if event.type.is_lifecycle or event.type is EventType.METADATA_UPDATED:
        return True
    return event.type is EventType.VALUE_UPDATED and event.service == ADMIN  # friendlyName, location


def _encrypts(sealer: Sealer, stream: str) -> bool:
    """A sealer that encrypts some streams only (JoseSealer rules) says which: their typedValue must be
    the sealed text too, not the clear value next to the ciphertext."""
    encrypts = getattr(sealer, "encrypts", None)
    return bool(encrypts(stream)) if callable(encrypts) else False


Pending = tuple[str, TransducerValue]  # (outbox uid, its value)


def split_values(values: list[Pending], limit: int) -> list[list[Pending]]:
    """Consecutive runs of values whose <data> item stays under `limit` bytes (a lone value over the limit
    gets an item of its own: the caller decides what to do with it)."""
    items: list[list[Pending]] = []
    current: list[Pending] = []
    size = DATA_OVERHEAD
    for value in values:
        cost = value_size(value[1])
        if current and size + cost > limit:
            items.append(current)
            current, size = [], DATA_OVERHEAD
        current.append(value)
        size += cost
    if current:
        items.append(current)
    return items


async def run_together(*coroutines: Coroutine[Any, Any, None]) -> None:
    """Runs coroutines until the first one ends; re-raises its error as is (not an ExceptionGroup, so
    the supervisor's health line names the real cause) and cancels the others."""
    tasks = [asyncio.ensure_future(c) for c in coroutines]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]


class SoxPublisher(OutboxPublisher):
    def __init__(
        self,
        model: Model,
        outbox: Outbox,
        endpoint: Callable[[], Endpoint],
        *,
        service: str,
        policy: NodePolicy,
        device_prefix: str = "",
        device_type: str = "other",
        batch: int = 500,
        max_item_bytes: int = 60_000,
        sealer: Sealer | None = None,
        actuation_allow: Collection[str] = (),
        exclude: Collection[str] = (),
        frames: Frames | None = None,
        name: str = "soxfire",
    ) -> None:
        super().__init__(name, outbox, sink=name, batch=batch, sealer=sealer)
        self.model = model
        self.endpoint = endpoint  # called at each connect: the password is read afresh (rotated secrets)
        self.service = service
        self.policy = policy
        self.device_prefix = device_prefix
        self.device_type = device_type
        self.max_item_bytes = max_item_bytes
        self.exclude = frozenset(exclude)  # providers mirrored from SOX by the bridge: not ours to publish
        self.session: SoxSession | None = None
        self.items_published = 0
        self.metas_published = 0
        self.skipped = 0  # records that could not be published at all (unreadable, or alone over the limit)
        self.frames = frames or Frames()
        self.frames_uploaded = 0
        self.frames_inline = 0
        self.frames_excluded = 0  # frames.mode = "off"
        self._upload_service: upload.UploadService | None = None
        self._upload_checked = False  # discovery runs once per session
        self.actuator = Actuator(model, actuation_allow, self.provider_of) if actuation_allow else None
        # Lossy: missing a shape event costs nothing, every connect republishes every meta anyway.
        self.shape = model.subscribe("soxfire-meta", maxsize=1000, filter=_shape_change)
        self._ready: dict[str, asyncio.Task[None]] = {}  # devices whose nodes and meta exist, this session

    # --- naming -------------------------------------------------------------------------------------

    def device_of(self, provider: str) -> str:
        return self.device_prefix + provider

    def provider_of(self, node: str) -> str | None:
        """The provider a `_data` node of ours belongs to, or None."""
        if not node.endswith("_data") or not node.startswith(self.device_prefix):
            return None
        return node[len(self.device_prefix) : -len("_data")] or None

    # --- connection ---------------------------------------------------------------------------------

    async def connect(self) -> None:
        self.session = SoxSession(self.endpoint(), resource="publisher")
        self._ready = {}
        self._upload_service, self._upload_checked = None, False
        await self.session.open()
        self.shape.get_batch(1_000_000, 0)  # all metas are (re)published now: queued changes are covered
        for provider in self.model.provider_names():
            if provider not in self.exclude:
                await self._device_ready(provider)
        if self.actuator is not None:
            self.session.on_item(self.actuator.handle)
            for provider in self.model.provider_names():
                if provider not in self.exclude:
                    await self.session.subscribe(self.service, data_node(self.device_of(provider)))

    async def disconnect(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            await session.close()

    async def start(self) -> None:
        await super().start()
        if self.actuator is not None and self.health().state is State.OK:
            self.set_health(State.OK, "actuation from SOX enabled")

    async def run(self) -> None:
        assert self.session is not None
        await run_together(super().run(), self._follow_shape(), self._watch(self.session))

    async def _watch(self, session: SoxSession) -> None:
        await session.lost.wait()
        if self.stopping:
            await asyncio.Event().wait()  # our own disconnect: let run() end the group
        await session.wait_lost()  # raises ConnectionLost

    # --- devices and their meta ---------------------------------------------------------------------

    async def _device_ready(self, provider: str) -> None:
        """Nodes exist and the meta is published, once per provider and session (shared by concurrent
        callers: the shape follower and send() may ask for a new provider at the same moment)."""
        task = self._ready.get(provider)
        if task is None or (task.done() and task.exception() is not None):
            task = self._ready[provider] = asyncio.ensure_future(self._prepare(provider))
        await asyncio.shield(task)

    async def _prepare(self, provider: str) -> None:
        assert self.session is not None
        await ensure_device(self.session, self.service, self.device_of(provider), self.policy)
        await self.publish_meta(provider)

    async def publish_meta(self, provider: str) -> None:
        assert self.session is not None
        try:
            snapshot = self.model.provider(provider)
        except UnknownElement:
            return  # gone already (its queued readings are still published, under its nodes)
        properties = {"sealing": self.sealer.content_type, "signed": str(self.sealer.signed).lower()}
        meta = mapping.device_meta(
            snapshot, self.device_of(provider), self.device_type, time.time(), properties
        )
        await self.session.publish(
            self.service, meta_node(self.device_of(provider)), build_meta(meta), "current"
        )
        self.metas_published += 1

    async def _follow_shape(self) -> None:
        while True:
            first = await self.shape.aget()
            if first is None:
                return
            await asyncio.sleep(0.1)  # a driver adds resources in a burst: one meta for the burst
            events = [first, *self.shape.get_batch(1_000_000, 0)]
            for provider in dict.fromkeys(e.provider for e in events):
                if provider in self.exclude:
                    continue
                if provider not in self._ready:
                    await self._device_ready(provider)  # publishes the meta too
                    if self.actuator is not None and self.session is not None:
                        await self.session.subscribe(self.service, data_node(self.device_of(provider)))
                else:
                    await self.publish_meta(provider)

    # --- readings -----------------------------------------------------------------------------------

    async def send(self, records: list[Record]) -> None:
        per_provider: dict[str, list[Pending]] = {}
        for record in records:
            if frames.is_frame_stream(record.stream):
                frame = await self._frame_value(record)
                if frame is not None and frame[0] not in self.exclude:
                    per_provider.setdefault(frame[0], []).append(frame[1])
                continue
            try:
                reading = mapping.decode_reading(record)
            except ValueError:
                self._skip(record, "its payload is not a reading")
                continue
            provider = reading["provider"]
            if provider in self.exclude:
                continue
            sealed = self.sealer.seal(record.payload, stream=record.stream)
            encrypted = self.sealer.encrypted or _encrypts(self.sealer, record.stream)
            value = mapping.reading_value(record, reading, sealed, encrypted=encrypted)
            per_provider.setdefault(provider, []).append((record.uid, value))
        await asyncio.gather(*(self._send_provider(p, values) for p, values in per_provider.items()))

    # --- anonymized frames (frames.py) ---------------------------------------------------------------

    async def _frame_value(self, record: Record) -> tuple[str, Pending] | None:
        """The frame record as a value of its camera's provider: uploaded, inline, or None (skipped)."""
        if self.frames.mode == "off":
            self.frames_excluded += 1
            return None
        encrypted = self.sealer.encrypted or _encrypts(self.sealer, record.stream)
        service = await self._frame_upload_service() if self.frames.mode == "auto" else None
        try:
            prepared, frame = frames.prepare(record, encrypt=encrypted and service is not None)
        except ValueError:
            self._skip(record, "its payload is not a frame record")
            return None
        if service is not None and (service.max_size is None or len(prepared.body) <= service.max_size):
            reference = await self._upload(record, prepared, service, encrypted)
            if reference is None:
                return None
            self.frames_uploaded += 1
        else:
            reference = prepared.inline(frame.jpeg)
            self.frames_inline += 1
        reading = {
            "service": prepared.service,
            "resource": frames.FRAME_RESOURCE,
            "value": frames.public_view(reference),
            "timestamp": frame.ts,
        }
        sealed = self.sealer.seal(frames.encode(reference), stream=record.stream)
        value = mapping.reading_value(record, reading, sealed, encrypted=encrypted)
        if value_size(value) + DATA_OVERHEAD > self.max_item_bytes:
            self._skip(record, f"the frame is larger than max_item_bytes ({self.max_item_bytes}) inline")
            return None
        return prepared.provider, (record.uid, value)

    async def _frame_upload_service(self) -> upload.UploadService | None:
        if not self._upload_checked and self.session is not None:
            domain = self.session.endpoint.jid.split("@", 1)[-1].split("/", 1)[0]
            self._upload_service = await upload.find_service(self.session, domain)
            self._upload_checked = True
            if self._upload_service is not None:
                log.info("frames are uploaded to %s (XEP-0363)", self._upload_service.jid)
        return self._upload_service

    async def _upload(
        self, record: Record, prepared: frames.PreparedFrame, service: upload.UploadService, encrypted: bool
    ) -> dict[str, Any] | None:
        assert self.session is not None
        # An encrypted upload is ciphertext: no image type, no name that says what it shows.
        content_type = "application/octet-stream" if encrypted else frames.CONTENT_TYPE
        name = f"{record.uid}.bin" if encrypted else f"{prepared.reference['camera']}-{record.uid}.jpg"
        try:
            slot = await upload.request_slot(
                self.session, service.jid, name, len(prepared.body), content_type
            )
            context = tls_context(self.session.endpoint)
            await upload.put(slot, prepared.body, content_type, context, self.frames.upload_timeout)
        except upload.UploadError as error:
            if not error.permanent:
                raise  # the server or the network may recover: the supervisor retries the batch
            self._skip(record, f"the upload was refused: {error}")
            return None
        return prepared.with_url(slot.get_url)

    async def _send_provider(self, provider: str, values: list[Pending]) -> None:
        await self._device_ready(provider)
        node = data_node(self.device_of(provider))
        for item in split_values(values, self.max_item_bytes):
            await self._publish_item(node, item)

    async def _publish_item(self, node: str, values: list[Pending]) -> None:
        assert self.session is not None
        if len(values) == 1 and value_size(values[0][1]) + DATA_OVERHEAD > self.max_item_bytes:
            values = self._shrink(values[0])
            if not values:
                return
        payload = build_data(value for _, value in values)
        try:
            # Item id: the last reading's uid. A redelivered item replaces itself in the node's storage.
            await self.session.publish(self.service, node, payload, values[-1][0])
        except PubsubError as error:
            if error.condition not in _TOO_BIG or len(values) == 1:
                raise
            half = len(values) // 2
            self.max_item_bytes = max(1024, self.max_item_bytes // 2)  # this server's limit is lower
            log.warning(
                "item of %d readings refused (%s): splitting, limit now %d bytes",
                len(values),
                error.condition,
                self.max_item_bytes,
            )
            await self._publish_item(node, values[:half])
            await self._publish_item(node, values[half:])
            return
        self.items_published += 1

    def _shrink(self, pending: Pending) -> list[Pending]:
        """A reading alone over the item limit: without its rawValue envelope if that fits, else skipped
        (it could never be published; holding it would stop every later reading)."""
        uid, value = pending
        bare = TransducerValue(value.id, value.typed_value, value.timestamp)
        if value_size(bare) + DATA_OVERHEAD <= self.max_item_bytes:
            log.warning("reading of %s too large with its rawValue: published without it", value.id)
            return [(uid, bare)]
        self.skipped += 1
        log.error("reading of %s is larger than max_item_bytes (%d): skipped", value.id, self.max_item_bytes)
        self.set_health(State.DEGRADED, f"{self.skipped} reading(s) too large to publish were skipped")
        return []

    def _skip(self, record: Record, why: str) -> None:
        self.skipped += 1
        log.error("outbox record %s cannot be published (%s): skipped", record.uid, why)
        self.set_health(State.DEGRADED, f"{self.skipped} record(s) could not be published and were skipped")
