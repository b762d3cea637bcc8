"""The recorder: every reading that changes the model is committed to the durable outbox.

It is the one lossless subscriber of the model: if the disk is slow, drivers wait rather than readings
being lost. Events are taken in batches and committed with one append_many (one transaction), on a worker
thread so the event loop never waits for fsync.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable

from .model import EventType, Model, ModelEvent, ResourceKind
from .outbox import Outbox, OutboxFull
from .runtime import Component, State

RECORDED_KINDS = (ResourceKind.SENSOR, ResourceKind.STATE_VARIABLE)


def reading_stream(event: ModelEvent) -> str:
    return event.path


def encode_reading(event: ModelEvent) -> bytes:
    """The outbox payload of a reading: what any sink needs to publish it, in compact JSON."""
    record = {
        "provider": event.provider,
        "service": event.service,
        "resource": event.resource,
        "value": event.value,
        "timestamp": event.timestamp,
    }
    unit = event.metadata.get("unit") if event.metadata else None
    if unit is not None:
        record["unit"] = unit
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()


class Recorder(Component):
    name = "recorder"

    def __init__(
        self,
        model: Model,
        outbox: Outbox,
        *,
        kinds: Iterable[ResourceKind] = RECORDED_KINDS,
        batch: int = 5000,
        queue: int = 20_000,
    ) -> None:
        super().__init__()
        self.outbox = outbox
        kinds = frozenset(kinds)
        self.readings_in = 0
        self.refused = 0
        # Subscribed at construction, before any driver starts: no reading can slip by unrecorded, and the
        # queue outlives a restart of this component.
        self.subscription = model.subscribe(
            "recorder",
            maxsize=queue,
            lossless=True,
            filter=lambda e: e.type is EventType.VALUE_UPDATED and e.kind in kinds,
        )
        self.batch = batch
        self._unsaved: list[ModelEvent] = []  # taken from the queue but not committed: retried first

    async def run(self) -> None:
        while not self.stopping:
            await asyncio.to_thread(self.pump, 0.2)
        await asyncio.to_thread(self.flush)

    def pump(self, timeout: float) -> int:
        """Commits what is queued (waiting up to `timeout` for the first event); returns how many."""
        events = self._unsaved or self.subscription.get_batch(self.batch, timeout)
        if not events:
            return 0
        self._unsaved = events
        try:
            self.outbox.append_many([(reading_stream(e), encode_reading(e)) for e in events])
        except OutboxFull:
            # Policy "refuse": the outbox counts the refusal; the health shows it.
            self.refused += len(events)
            self.set_health(State.DEGRADED, "outbox full: new readings are refused")
        else:
            if self.health().state is State.DEGRADED:
                self.set_health(State.OK)
        self._unsaved = []
        self.readings_in += len(events)
        return len(events)

    def flush(self) -> None:
        while self._unsaved or self.subscription.pending:
            self.pump(0)
