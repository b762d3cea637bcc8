"""One broker connection: a paho client with its own network thread, bridged to asyncio.

Why paho's thread (loop_start) and not its socket callbacks on the event loop: paho parses and frames every
packet in Python; at thousands of messages/s that work would run on the loop that also serves the REST API
and the status page. In its own thread it only costs the loop one wake-up per batch. The TCP connect and the
TLS handshake (blocking in paho) run in a worker thread for the same reason.

A connection is used once: when it drops, everything in flight fails, the publisher raises, the supervisor
restarts it with backoff, and the records not yet confirmed are sent again from the outbox on a new one.
paho's own reconnect is off, so exactly one place decides when to retry and nothing is re-sent twice.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from ...security.secrets import Secret
from .config import MqttSection
from .flight import Flight, Result, Tracker, call_threadsafe
from .payload import Message
from .status import Status
from .tls import tls_context

log = logging.getLogger("agent.northbound.mqtt")

_GOODBYE_TIMEOUT = 1.0  # how long a clean stop waits for the broker to take the "offline" status


class MqttConnectError(ConnectionError):
    """The broker could not be reached, refused TLS, or refused the CONNECT. The text is safe to show."""


class MqttDisconnected(ConnectionError):
    """The connection was lost while messages were in flight. `code`: the MQTT 5 reason code of the
    disconnection when there is one (from the broker's DISCONNECT, or paho's own complaint), else None."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Credentials:
    username: str | None = None
    password: Secret | None = None
    key_password: Secret | None = None


class Connection:
    def __init__(
        self, section: MqttSection, client_id: str, status: Status, credentials: Credentials
    ) -> None:
        self.section = section
        self.client_id = client_id
        self.status = status
        self.credentials = credentials
        self.max_packet: int | None = None  # the broker's Maximum Packet Size (MQTT 5 CONNACK), if any
        self.window = section.inflight
        self._client: paho.Client | None = None
        self._tracker = Tracker(section.inflight)
        self._connack: asyncio.Future[ReasonCode | BaseException] | None = None
        self.lost: asyncio.Future[BaseException] | None = None  # resolves when the connection drops
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = False

    @property
    def where(self) -> str:
        return f"{self.section.host}:{self.section.effective_port}"

    # -- opening -------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connects, waits for a successful CONNACK and publishes the retained "online" status."""
        self._loop = asyncio.get_running_loop()
        self._connack = self._loop.create_future()
        self.lost = self._loop.create_future()
        client = self._client = self._new_client()
        try:
            await asyncio.to_thread(self._connect_blocking, client)
            client.loop_start()
            try:
                answer = await asyncio.wait_for(asyncio.shield(self._connack), self.section.connect_timeout)
            except TimeoutError:
                raise MqttConnectError(
                    f"no CONNACK from {self.where} within {self.section.connect_timeout} s"
                ) from None
            if isinstance(answer, BaseException):
                raise answer
            if answer.is_failure:
                raise MqttConnectError(f"{self.where} refused the connection: {answer.getName()}")
            self._connected = True
            await self.publish_status(self.status.online())
        except BaseException:
            await self.close(goodbye=False)
            raise

    def _new_client(self) -> paho.Client:
        section = self.section
        mqtt5 = section.protocol == "5"
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=paho.MQTTv5 if mqtt5 else paho.MQTTv311,
            clean_session=None if mqtt5 else True,  # the outbox is our session: nothing to resume
            reconnect_on_failure=False,
        )
        client.connect_timeout = section.connect_timeout
        client.max_inflight_messages_set(0)  # the Tracker's window bounds what is in flight, not paho
        client.max_queued_messages_set(0)
        client.will_set(self.status.topic, self.status.will(), qos=1, retain=True)
        if section.username is not None:
            password = self.credentials.password.reveal() if self.credentials.password else None
            client.username_pw_set(section.username, password)
        if section.tls is not None:
            try:
                client.tls_set_context(tls_context(section.tls, self.credentials.key_password))
            except (OSError, ssl.SSLError) as error:
                raise MqttConnectError(f"TLS setup failed: {_describe(error)}") from None
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    def _connect_blocking(self, client: paho.Client) -> None:
        try:
            if self.section.protocol == "5":
                client.connect(
                    self.section.host, self.section.effective_port, self.section.keepalive, clean_start=True
                )
            else:
                client.connect(self.section.host, self.section.effective_port, self.section.keepalive)
        except ssl.SSLCertVerificationError as error:
            raise MqttConnectError(
                f"TLS: {self.where} presented a certificate we do not trust: {error.verify_message}"
            ) from None
        except (OSError, ssl.SSLError) as error:
            raise MqttConnectError(f"cannot connect to {self.where}: {_describe(error)}") from None

    # -- publishing ------------------------------------------------------------------------------

    def new_flight(self, size: int) -> Flight:
        assert self._loop is not None
        return Flight(self._loop, size)

    def publish(self, flight: Flight, index: int, message: Message, qos: int, retain: bool = False) -> bool:
        """Worker thread: waits for room in the window, then hands the message to paho.

        Returns False (and leaves the flight aborted) once the connection failed."""
        client = self._client
        if client is None or not self._tracker.acquire(flight):
            if not flight.aborted:
                flight.abort(MqttDisconnected(f"not connected to {self.where}"))
            return False
        info = client.publish(
            message.topic, message.payload, qos=qos, retain=retain, properties=message.properties
        )
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._tracker.release()
            flight.abort(MqttDisconnected(f"publish to {self.where} failed: {paho.error_string(info.rc)}"))
            return False
        self._tracker.expect(info.mid, flight, index)
        return True

    async def publish_status(self, payload: bytes, timeout: float | None = None) -> None:
        flight = self.new_flight(1)
        message = Message(self.status.topic, payload)
        sent = await asyncio.to_thread(self.publish, flight, 0, message, 1, True)
        results = await flight.wait(timeout or self.section.ack_timeout) if sent else None
        if results and not results[0].delivered:
            raise MqttConnectError(f"{self.where} refused the status message: {results[0].reason}")
        if not sent and flight.error is not None:
            raise flight.error

    # -- closing ---------------------------------------------------------------------------------

    async def close(self, goodbye: bool = True) -> None:
        """Leaves a retained "offline" (when connected and `goodbye`), disconnects, ends paho's thread.
        Never raises: it is called on every way out."""
        client, self._client = self._client, None
        if client is None:
            return
        if goodbye and self._connected:
            self._client = client  # publish() needs it for the goodbye
            try:
                await asyncio.wait_for(
                    self.publish_status(self.status.stopped(), _GOODBYE_TIMEOUT), _GOODBYE_TIMEOUT
                )
            except Exception as error:  # the broker may be gone already: the will says offline then
                log.debug("no clean offline status: %s", _describe(error))
            self._client = None
        self._connected = False
        self._tracker.fail(MqttDisconnected("connection closed"))
        try:
            client.disconnect()  # a DISCONNECT packet: the broker discards the will
        except Exception as error:
            log.debug("disconnect failed: %s", _describe(error))
        await asyncio.to_thread(client.loop_stop)  # joins paho's thread

    # -- paho callbacks (paho's network thread) --------------------------------------------------

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        if properties is not None:
            self.max_packet = getattr(properties, "MaximumPacketSize", None)
            receive_maximum = getattr(properties, "ReceiveMaximum", None)
            if receive_maximum and receive_maximum < self.window:
                # The broker takes fewer unacknowledged messages: exceeding it would get us disconnected.
                self._tracker = Tracker(receive_maximum)
                self.window = receive_maximum
        self._resolve_connack(reason)

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: ReasonCode, properties: Any
    ) -> None:
        error = MqttDisconnected(f"connection to {self.where} lost: {reason.getName()}", reason.value)
        self._tracker.fail(error)
        self._resolve_connack(
            MqttConnectError(f"{self.where} closed the connection before CONNACK: {reason.getName()}")
        )
        self._resolve(self.lost, error)

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: ReasonCode, properties: Any) -> None:
        self._tracker.acked(mid, Result(reason.value, reason.getName()))

    def _resolve_connack(self, answer: ReasonCode | BaseException) -> None:
        self._resolve(self._connack, answer)

    def _resolve(self, future: asyncio.Future[Any] | None, answer: object) -> None:
        loop = self._loop
        if future is None or loop is None:
            return

        def resolve() -> None:
            if not future.done():
                future.set_result(answer)

        call_threadsafe(loop, resolve)


def _describe(error: BaseException) -> str:
    if isinstance(error, ssl.SSLError) and error.reason:
        return f"TLS: {error.reason}"
    text = getattr(error, "strerror", None) or str(error) or type(error).__name__
    return text.splitlines()[0][:200]
