"""What goes on the wire for one outbox record, and how a consumer reads it back.

The payload is the sealed record payload, byte for byte, so a signature stays verifiable. A consumer drops
duplicates (a re-send after a lost PUBACK) by `uid` and spots gaps by `seq` (per stream):

* MQTT 5: they travel as user properties `uid`, `seq`, `stream`; the content type is the sealer's.
* MQTT 3.1.1 has no properties, so the payload is a JSON envelope
  `{"uid":…,"seq":…,"stream":…,"content_type":…,"payload":<sealed>}`: a JSON sealed payload is embedded
  verbatim (not re-serialised, so its bytes are the signed ones); anything else goes base64-encoded in
  `payload_base64` instead.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ...core.outbox import Record
from ...security.sealer import Sealer


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    properties: Properties | None = None  # MQTT 5 only


@dataclass(frozen=True, slots=True)
class Received:
    """A record as a consumer sees it (see `read_message`)."""

    uid: str
    seq: int
    stream: str
    content_type: str
    payload: bytes


def is_json(content_type: str) -> bool:
    # "application/json", "application/jose+json" (JWS/JWE JSON serialisation), "text/json"...
    return content_type.split(";")[0].strip().endswith(("/json", "+json"))


class MessageEncoder:
    def __init__(self, protocol: str, sealer: Sealer) -> None:
        self.mqtt5 = protocol == "5"
        self.sealer = sealer

    def encode(self, record: Record, topic: str) -> Message:
        sealed = self.sealer.seal(record.payload, stream=record.stream)
        if self.mqtt5:
            return Message(topic, sealed, self._properties(record))
        return Message(topic, self._envelope(record, sealed))

    def _properties(self, record: Record) -> Properties:
        properties = Properties(PacketTypes.PUBLISH)
        properties.UserProperty = [("uid", record.uid), ("seq", str(record.seq)), ("stream", record.stream)]
        properties.ContentType = self.sealer.content_type
        if is_json(self.sealer.content_type):
            properties.PayloadFormatIndicator = 1  # UTF-8 text: brokers and tools may show it as such
        return properties

    def _envelope(self, record: Record, sealed: bytes) -> bytes:
        head = json.dumps(
            {
                "uid": record.uid,
                "seq": record.seq,
                "stream": record.stream,
                "content_type": self.sealer.content_type,
            },
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()[:-1]  # the object stays open for the payload member
        if is_json(self.sealer.content_type) and _valid_json(sealed):
            return head + b',"payload":' + sealed + b"}"
        return head + b',"payload_base64":"' + base64.b64encode(sealed) + b'"}'


def _valid_json(data: bytes) -> bool:
    """Embedding invalid JSON verbatim would break the whole envelope for the consumer."""
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


def read_message(
    payload: bytes, user_properties: list[tuple[str, str]] | None, content_type: str = ""
) -> Received:
    """The consumer's side, for both protocols: user properties (MQTT 5) or the envelope (3.1.1).

    Raises ValueError for a message that carries neither (not published by this agent)."""
    if user_properties:
        found = dict(user_properties)
        if {"uid", "seq", "stream"} <= found.keys():
            return Received(found["uid"], int(found["seq"]), found["stream"], content_type, payload)
    envelope = json.loads(payload)
    if not isinstance(envelope, dict) or not {"uid", "seq", "stream"} <= envelope.keys():
        raise ValueError("not an M-Sec record: no uid/seq/stream")
    if "payload_base64" in envelope:
        inner = base64.b64decode(envelope["payload_base64"], validate=True)
    else:
        # Re-serialised here for convenience; a verifier of signed JSON should cut the raw bytes instead.
        inner = json.dumps(envelope["payload"], separators=(",", ":"), ensure_ascii=False).encode()
    return Received(
        envelope["uid"], envelope["seq"], envelope["stream"], envelope.get("content_type", ""), inner
    )
