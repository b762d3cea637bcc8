"""MqttPublisher: the outbox → MQTT broker sink.

Records are published in outbox order with a window of `inflight` PUBLISHes awaiting their PUBACK (one
round trip per message would cap a cellular link at a few dozen readings/s). A batch returns to the shared
loop (which acks it in the outbox) only once every PUBACK is in. If the connection drops, the confirmed
prefix of the batch is acked, the rest stays in the outbox and is re-sent, in order, after the supervisor
restarted us with backoff: a consumer sees a re-sent record at most once more, with the same uid.

A record that can never be delivered (its topic is invalid, it is larger than `max_payload` or the broker's
maximum packet size, or the broker refused its content in the PUBACK) is dropped, counted in `rejected`,
logged and shown in health: keeping it would block every later reading forever. A refusal that may pass
(not authorized, quota exceeded, unspecified) fails the batch instead, to be retried after a backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ...core.outbox import Outbox, Record
from ...core.runtime import State
from ...security.sealer import Sealer
from ...security.secrets import SecretError, TpmResolver, resolve_secret
from ..publisher import OutboxPublisher
from .config import MqttSection
from .connection import Connection, Credentials, MqttConnectError, MqttDisconnected
from .flight import REJECTED, Flight, Result
from .payload import Message, MessageEncoder
from .status import Status
from .topics import TopicBuilder, TopicError

log = logging.getLogger("agent.northbound.mqtt")

# PUBACK reason codes that refuse this message's content: sending it again gets the same answer.
# 0x83 "implementation specific error" is what Mosquitto answers to a payload over message_size_limit.
PERMANENT_REFUSALS = frozenset({0x83, 0x90, 0x95, 0x99})
# Disconnections that may be caused by the message in flight rather than the network: malformed packet,
# protocol error, topic name invalid, packet too large, payload format invalid. (Mosquitto 2.0 answers an
# oversize MQTT 5 PUBLISH with a PUBACK code not allowed in a PUBACK; paho calls that a protocol error.)
SUSPECT_DISCONNECTS = frozenset({0x81, 0x82, 0x90, 0x95, 0x99})
_UNDELIVERABLE = PERMANENT_REFUSALS | {REJECTED}


class MqttRefused(Exception):
    """The broker refused messages for a reason that may pass (e.g. not authorized, quota exceeded)."""


class MqttPublisher(OutboxPublisher):
    # A broker outage must not starve systemd's watchdog (restarting the agent would not bring the broker
    # back); the failure shows in this component's health and the readings wait in the outbox.

    def __init__(
        self,
        section: MqttSection,
        device_id: str,
        outbox: Outbox,
        sealer: Sealer | None = None,
        *,
        name: str = "mqtt",
        tpm: TpmResolver | None = None,
    ) -> None:
        super().__init__(name, outbox, sink=name, batch=section.batch, sealer=sealer)
        self.section = section
        self.client_id = section.client_id or device_id
        self.topics = TopicBuilder(section.topic, device_id)
        self.status = Status.from_template(section.status_topic, device_id)
        self.encoder = MessageEncoder(section.protocol, self.sealer)
        self.rejected = 0  # records dropped as undeliverable since start (see module docstring)
        self.last_rejection = ""
        self._tpm = tpm
        self._connection: Connection | None = None
        # Poison detection: after a suspect disconnection, the first unconfirmed record is sent alone;
        # if the connection drops again with it alone in flight, it is undeliverable.
        self._isolate: int | None = None
        self._sending = False
        self._poison: dict[int, str] = {}

    # -- OutboxPublisher ---------------------------------------------------------------------------

    async def connect(self) -> None:
        # Resolved at every connect, so a rotated password file is picked up by the next reconnect.
        credentials = await asyncio.to_thread(self._credentials)
        connection = Connection(self.section, self.client_id, self.status, credentials)
        await connection.open()
        self._connection = connection
        log.info("connected to MQTT broker %s as %s", connection.where, self.client_id)

    async def start(self) -> None:
        await super().start()
        self._report()

    async def run(self) -> None:
        """The shared loop, watched: a connection lost while idle must fail us too (and be reported), not
        only one lost during a batch."""
        connection = self._connection
        if connection is None or connection.lost is None:
            raise MqttDisconnected("not connected")
        work = asyncio.ensure_future(super().run())
        await asyncio.wait({work, connection.lost}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done() and not self._sending:
            work.cancel()  # idle: nothing in flight
            with contextlib.suppress(asyncio.CancelledError):
                await work
            if not self.stopping:  # stop() closing the connection is no failure
                raise connection.lost.result()
            return
        await work  # a batch in flight fails by itself (its flight was aborted), with the details

    async def send(self, records: list[Record]) -> None:
        self._sending = True
        try:
            await self._send_isolating(records)
        finally:
            self._sending = False

    async def _send_isolating(self, records: list[Record]) -> None:
        if self._isolate == records[0].id:
            self._isolate = None
            try:
                await self._send(records[:1])
            except MqttDisconnected as error:
                if error.code in SUSPECT_DISCONNECTS:
                    self._poison[records[0].id] = f"the broker dropped the connection on it ({error})"
                raise
            records = records[1:]
        if records:
            await self._send(records)

    async def _send(self, records: list[Record]) -> None:
        connection = self._connection
        if connection is None:
            raise MqttDisconnected("not connected")
        flight = connection.new_flight(len(records))
        worker = asyncio.ensure_future(asyncio.to_thread(self._publish_all, connection, flight, records))
        try:
            results = await flight.wait(self.section.ack_timeout)
        except BaseException as error:
            if not flight.aborted:
                flight.abort(error)  # stops the worker
            done = await self._ack_done(records, flight.results[: flight.confirmed_prefix()])
            if (
                isinstance(error, MqttDisconnected)
                and error.code in SUSPECT_DISCONNECTS
                and done < len(records)
            ):
                self._isolate = records[done].id
            raise
        finally:
            await worker  # returns at once: the flight is complete or aborted
        done = self._settle(records, results)
        if done < len(records):
            await self._ack_done(records, results[:done])
            topic = self.topics.topic(records[done].stream)
            raise MqttRefused(f"the broker refused a message on {topic}: {results[done].reason}")

    async def disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    # -- internals -------------------------------------------------------------------------------

    def _credentials(self) -> Credentials:
        tls = self.section.tls
        try:
            password = resolve_secret(self.section.password, tpm=self._tpm) if self.section.password else None
            key_password = (
                resolve_secret(tls.key_password, tpm=self._tpm)
                if tls is not None and tls.key_password
                else None
            )
        except SecretError as error:  # names the reference, never the secret
            raise MqttConnectError(f"cannot read a credential: {error}") from None
        return Credentials(self.section.username, password, key_password)

    def _publish_all(self, connection: Connection, flight: Flight, records: list[Record]) -> None:
        """Worker thread: seal (maybe slow, e.g. a TPM signature) and publish, in order, within the window."""
        try:
            for index, record in enumerate(records):
                if flight.aborted:
                    return
                message = self._message(connection, record)
                if isinstance(message, Result):
                    flight.settle(index, message)
                elif not connection.publish(flight, index, message, self.section.qos):
                    return
        except Exception as error:  # a sealer failure: fail the batch, the supervisor retries later
            flight.abort(error)

    def _message(self, connection: Connection, record: Record) -> Message | Result:
        if record.id in self._poison:
            return Result(REJECTED, self._poison.pop(record.id))
        try:
            topic = self.topics.topic(record.stream)
        except TopicError as error:
            return Result(REJECTED, f"invalid topic: {error}")
        message = self.encoder.encode(record, topic)
        size = len(message.payload)
        if size > self.section.max_payload:
            return Result(
                REJECTED, f"payload of {size} bytes exceeds mqtt.max_payload={self.section.max_payload}"
            )
        if connection.max_packet is not None and _packet_size(message) > connection.max_packet:
            return Result(
                REJECTED, f"message exceeds the broker's maximum packet size {connection.max_packet}"
            )
        return message

    def _settle(self, records: list[Record], results: list[Result | None]) -> int:
        """How many leading records are done with: delivered, or undeliverable (counted and logged here).
        It stops at a refusal that may pass: that record, and every one after it, must be sent again."""
        for index, (record, result) in enumerate(zip(records, results, strict=False)):
            if result is None or not (result.delivered or result.code in _UNDELIVERABLE):
                return index
            if not result.delivered:
                self.rejected += 1
                self.last_rejection = result.reason
                log.error(
                    "MQTT record dropped as undeliverable: %s",
                    result.reason,
                    extra={"uid": record.uid, "stream": record.stream, "seq": record.seq},
                )
                self._report()
        return min(len(records), len(results))

    async def _ack_done(self, records: list[Record], results: list[Result | None]) -> int:
        """After a failure: ack what is done before it, so that only the rest is sent again."""
        done = self._settle(records, results)
        if done:
            try:
                await asyncio.to_thread(self.outbox.ack, self.sink, records[done - 1].id)
                self.published += done
            except Exception as error:  # the outbox closing under us: the records are simply re-sent
                log.warning("could not ack the confirmed part of a failed batch: %s", error)
                return 0
        return done

    def _report(self) -> None:
        problems = []
        if not self.sealer.signed:
            problems.append("publishing unsealed (no keystore configured)")
        if self.section.qos == 0:
            problems.append("qos 0: readings are deleted once sent, without the broker's acknowledgement")
        if self.rejected:
            problems.append(f"{self.rejected} undeliverable record(s) dropped, last: {self.last_rejection}")
        self.set_health(State.DEGRADED if problems else State.OK, "; ".join(problems))


def _packet_size(message: Message) -> int:
    """An upper bound of a PUBLISH packet's size: fixed header, topic, packet id, properties, payload."""
    properties = len(message.properties.pack()) if message.properties is not None else 1
    return 5 + 2 + len(message.topic.encode()) + 2 + properties + len(message.payload)
