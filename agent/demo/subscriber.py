"""The connections behind `msec-agent watch` (agent/demo/watch.py): a SOX consumer and an MQTT consumer
that print each reading with its seal's verdict. Imported only when the command runs (slixmpp, paho)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import secrets
import ssl
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import paho.mqtt.client as paho
from cryptography.hazmat.primitives.asymmetric import ec
from paho.mqtt.enums import CallbackAPIVersion

from ..northbound.mqtt import read_message
from ..northbound.soxfire.session import Endpoint, SoxError, SoxSession
from ..northbound.soxfire.wire import WireError, format_timestamp, parse_data, parse_meta
from ..security.keystore import KeystoreConfig, KeystoreError, open_keystore
from ..security.verify import ReplayGuard, verify_record
from .watch import format_reading

RETRY = 1.0  # seconds between connection attempts, and between looks for new SOX devices


class Watcher:
    def __init__(
        self,
        services: dict[str, Any],
        state_dir: Path,
        transports: Iterable[str],
        *,
        count: int | None = None,
        as_json: bool = False,
    ) -> None:
        self.services = services
        self.device = str(services["device"])
        self.ca_file = str(services["ca_file"])
        self.state_dir = state_dir
        self.transports = list(transports)
        self.count = count
        self.as_json = as_json
        self.received = dict.fromkeys(self.transports, 0)
        self.failures = 0
        self._seen: dict[str, set[str]] = {t: set() for t in self.transports}
        self._guards = {t: ReplayGuard() for t in self.transports}  # each transport carries every record
        self._identity: ec.EllipticCurvePublicKey | None = None
        self._identity_error = ""
        self._complained: set[str] = set()
        self._done = asyncio.Event()

    @property
    def ok(self) -> bool:
        return self.failures == 0

    async def run(self, timeout: float | None) -> int:
        logging.basicConfig(level=logging.CRITICAL)  # connection trouble is reported here, once per kind
        tasks = [asyncio.create_task(getattr(self, f"_{t}")()) for t in self.transports]
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
        except TimeoutError:
            got = ", ".join(f"{t}: {n}" for t, n in self.received.items())
            if self.count is None:  # "watch for this long": done
                self._say(f"watched for {timeout:.1f} s ({got})")
                return 0 if self.ok else 1
            self._say(f"timed out waiting for {self.count} reading(s) per transport ({got})")
            return 1
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        return 0 if self.ok else 1

    # --- output and verification ------------------------------------------------------------------------

    def _say(self, text: str) -> None:
        print(f"watch: {text}", file=sys.stderr, flush=True)

    def _complain(self, key: str, text: str) -> None:
        if key not in self._complained:
            self._complained.add(key)
            self._say(text)

    def _identities(self) -> dict[str, ec.EllipticCurvePublicKey]:
        """The device's identity public key from the demo's software keystore (read once it exists: the
        agent creates it after the services started)."""
        if self._identity is None:
            keystore_logger = logging.getLogger("agent.keystore")
            keystore_logger.disabled = True  # "INSECURE software keystore": true, and the agent says so
            try:
                store = open_keystore(
                    KeystoreConfig(backend="software"), self.state_dir, create_missing=False
                )
                with store:
                    self._identity = store.identity_public_key()
            except (KeystoreError, OSError) as error:
                self._identity_error = f"no identity key for {self.device}: {error}"
            finally:
                keystore_logger.disabled = False
        return {self.device: self._identity} if self._identity is not None else {}

    def _emit(self, via: str, uid: str, sealed: str | bytes | None, fallback: dict[str, Any]) -> None:
        """One reading (dropped if its uid was seen on this transport): verified, printed, counted."""
        if self.count is not None and self.received[via] >= self.count:
            return  # this transport has shown its share; the others may still be waiting
        if uid:
            if uid in self._seen[via]:
                return
            self._seen[via].add(uid)
        reading = {"via": via, "uid": uid, **fallback, "device": self.device}
        record, verdict, reason = _plain_record(sealed), "unsealed", ""
        if record is None and sealed is not None:
            identities = self._identities()
            if identities:
                result = verify_record(sealed, identities=identities, replay=self._guards[via])
                verdict, reason, record = result.status.value, result.reason, result.record
                reading.update(seq=result.seq, signing_kid=result.signing_kid)
            else:
                verdict, reason = "unverified", self._identity_error
        if isinstance(record, dict):
            reading.update(
                stream=f"{record.get('provider')}/{record.get('service')}/{record.get('resource')}",
                value=record.get("value"),
                unit=record.get("unit", reading.get("unit")),
                timestamp=_timestamp(record.get("timestamp", reading.get("timestamp"))),
            )
        reading.update(verdict=verdict, reason=reason)
        if verdict not in ("valid", "unsealed"):
            self.failures += 1
        print(
            json.dumps(reading, ensure_ascii=False) if self.as_json else format_reading(reading), flush=True
        )
        self.received[via] += 1
        if self.count is not None and all(n >= self.count for n in self.received.values()):
            self._done.set()

    # --- SOX --------------------------------------------------------------------------------------------

    async def _sox(self) -> None:
        info = self.services["sox"]
        endpoint = Endpoint(
            jid=info["anonymous_domain"],
            password=None,  # SASL ANONYMOUS, as SOX readers log in
            host=info["host"],
            port=int(info["port"]),
            ca_file=self.ca_file,
            connect_timeout=5.0,
            iq_timeout=10.0,
        )
        service = info["pubsub"]
        while True:
            session = SoxSession(endpoint)
            units: dict[str, dict[str, str]] = {}
            session.on_item(functools.partial(self._sox_item, units))
            try:
                await session.open()
                self._complained.discard("sox")
                self._say(f"SOX: logged in anonymously on {info['host']}:{info['port']}, reading {service}")
                subscribed: set[str] = set()
                while not session.lost.is_set():
                    for node in await session.node_names(service):
                        if node.endswith("_data") and node not in subscribed:
                            device = node[: -len("_data")]
                            units[device] = await self._sox_units(session, service, device)
                            await session.subscribe(service, node)
                            subscribed.add(node)
                            self._say(f"SOX: subscribed to {node}")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(session.lost.wait(), RETRY)
                self._say("SOX: connection lost; reconnecting")
            except SoxError as error:
                self._complain("sox", f"SOX: {error}; retrying")
            finally:
                await session.close()
            await asyncio.sleep(RETRY)

    @staticmethod
    async def _sox_units(session: SoxSession, service: str, device: str) -> dict[str, str]:
        try:
            meta = await session.last_item(service, f"{device}_meta")
            return {t.id: t.units for t in parse_meta(meta).transducers} if meta is not None else {}
        except (SoxError, WireError):
            return {}

    def _sox_item(
        self,
        units: dict[str, dict[str, str]],
        _service: str,
        node: str,
        payload: ET.Element | None,
        _publisher: str | None,
    ) -> None:
        if payload is None or not node.endswith("_data"):
            return
        device = node[: -len("_data")]
        try:
            data = parse_data(payload)
        except WireError as error:
            self._say(f"SOX: unreadable item on {node}: {error}")
            return
        for value in data.values:
            raw = _json_object(value.raw_value)
            sealed = raw.get("sealed")
            fallback = {
                "stream": f"{device}/{value.id}",
                "value": value.typed_value,
                "unit": units.get(device, {}).get(value.id),
                "timestamp": format_timestamp(value.timestamp),
                "seq": raw.get("seq"),
            }
            self._emit("sox", str(raw.get("uid", "")), sealed if isinstance(sealed, str) else None, fallback)

    # --- MQTT -------------------------------------------------------------------------------------------

    async def _mqtt(self) -> None:
        info = self.services["mqtt"]
        loop = asyncio.get_running_loop()
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"msec-watch-{secrets.token_hex(4)}",
            protocol=paho.MQTTv5,
        )
        client.tls_set_context(ssl.create_default_context(cafile=self.ca_file))
        client.reconnect_delay_set(0.2, 2)
        topic = info["topic"]

        def on_connect(client: paho.Client, _userdata: Any, _flags: Any, reason: Any, _props: Any) -> None:
            if reason.is_failure:
                loop.call_soon_threadsafe(self._complain, "mqtt", f"MQTT: connection refused: {reason}")
                return
            client.subscribe(topic, qos=1)
            loop.call_soon_threadsafe(
                self._say, f"MQTT: subscribed to {topic} on {info['host']}:{info['port']}"
            )

        def on_connect_fail(_client: paho.Client, _userdata: Any) -> None:
            loop.call_soon_threadsafe(
                self._complain, "mqtt", f"MQTT: cannot connect to {info['host']}:{info['port']}; retrying"
            )

        client.on_connect = on_connect
        client.on_connect_fail = on_connect_fail
        client.on_message = lambda _c, _u, message: loop.call_soon_threadsafe(self._mqtt_message, message)
        client.connect_async(info["host"], int(info["port"]), keepalive=30)
        client.loop_start()
        try:
            await asyncio.Event().wait()  # until cancelled
        finally:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)

    def _mqtt_message(self, message: paho.MQTTMessage) -> None:
        if message.topic.endswith("/status"):
            status = _json_object(message.payload)
            if not self.as_json:
                print(
                    f"mqtt {message.topic}: {status.get('state')} {status.get('reason', '')}".rstrip(),
                    flush=True,
                )
            return
        props = getattr(message, "properties", None)
        try:
            received = read_message(
                message.payload,
                getattr(props, "UserProperty", None),
                getattr(props, "ContentType", "") or "",
            )
        except ValueError as error:
            self._say(f"MQTT: not a record on {message.topic}: {error}")
            return
        fallback = {"stream": received.stream, "value": None, "timestamp": None, "seq": received.seq}
        self._emit("mqtt", received.uid, received.payload, fallback)


def _json_object(text: str | bytes | None) -> dict[str, Any]:
    try:
        value = json.loads(text or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _plain_record(sealed: str | bytes | None) -> dict[str, Any] | None:
    """The recorder's JSON when the record was published unsealed (no [keystore]), else None."""
    record = _json_object(sealed) if sealed is not None else {}
    return record if "provider" in record and "resource" in record else None


def _timestamp(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return format_timestamp(float(value))
    return value
