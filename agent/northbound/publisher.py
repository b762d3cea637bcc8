"""The loop every publisher shares: outbox → server, in order, acknowledged only after the server's word.

A publisher is a component with its own outbox sink. It takes the sink's oldest records, hands them to
`send()` (which returns once the server confirmed them: an XMPP IQ result, an MQTT PUBACK), then acks them
in the outbox. A failure leaves the records in place: they are sent again after the reconnect (consumers
drop duplicates by uid), never skipped and never reordered.
"""

from __future__ import annotations

import asyncio
import logging
import time

from ..core.outbox import Outbox, Record
from ..core.runtime import Component, State
from ..security.sealer import Sealer, Unsealed

log = logging.getLogger("agent.northbound.publisher")


class OutboxPublisher(Component):
    """Subclass: implement connect(), send() and disconnect(). run() drives them."""

    # A server that is away is the normal life of a truck: readings wait in the outbox, health says why,
    # and the agent stays ready (no systemd restart for a network outage).
    critical = False

    def __init__(
        self,
        name: str,
        outbox: Outbox,
        *,
        sink: str | None = None,
        batch: int = 200,
        idle_poll: float = 0.5,
        sealer: Sealer | None = None,
    ) -> None:
        super().__init__(name)
        self.outbox = outbox
        self.sink = sink or name
        self.batch = batch
        self.idle_poll = idle_poll
        self.sealer: Sealer = sealer or Unsealed()
        self.published = 0  # records confirmed by the server since start
        self.rejected = 0  # records the server refused for good (dropped and logged by the subclass)
        self.last_ack: float | None = None  # time of the last confirmed publish
        outbox.register_sink(self.sink)

    async def connect(self) -> None:
        """Open the connection; raise to have the supervisor retry with backoff."""

    async def send(self, records: list[Record]) -> None:
        """Publish records (in order) and return once the server confirmed every one of them."""
        raise NotImplementedError

    async def disconnect(self) -> None:
        """Close the connection; must not raise."""

    async def start(self) -> None:
        await self.connect()
        detail = "" if self.sealer.signed else "publishing unsealed (no keystore configured)"
        self.set_health(State.DEGRADED if detail else State.OK, detail)

    async def run(self) -> None:
        while not self.stopping:
            seen = self.outbox.generation
            records = await asyncio.to_thread(self.outbox.peek, self.sink, self.batch)
            if not records:
                # Woken by the next commit (no polling delay); idle_poll only bounds how long a stop waits.
                await asyncio.to_thread(self.outbox.wait_for_appends, seen, self.idle_poll)
                continue
            await self.send(records)
            await asyncio.to_thread(self.outbox.ack, self.sink, records[-1].id)
            self.published += len(records)
            self.last_ack = time.time()

    async def stop(self) -> None:
        await super().stop()
        await self.disconnect()
