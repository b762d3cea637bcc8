"""Payload and dedup keys: MQTT 5 user properties, MQTT 3.1.1 envelope; read back by read_message."""

from __future__ import annotations

import json

from agent.core.outbox import Record
from agent.northbound.mqtt.payload import MessageEncoder, read_message
from agent.security.sealer import Unsealed

RECORD = Record(7, "ep-7", "p/s/r", 3, 0.0, b'{"value":1.5}')


class Jose:
    content_type, signed, encrypted = "application/jose", True, False

    def seal(self, payload: bytes, *, stream: str) -> bytes:
        return b"eyJ.sig\xff"


def test_mqtt5_keeps_the_sealed_bytes_and_puts_uid_seq_in_properties() -> None:
    message = MessageEncoder("5", Unsealed()).encode(RECORD, "t")
    assert message.payload == RECORD.payload
    assert message.properties.PayloadFormatIndicator == 1
    got = read_message(message.payload, message.properties.UserProperty, "application/json")
    assert (got.uid, got.seq, got.stream, got.payload) == ("ep-7", 3, "p/s/r", RECORD.payload)


def test_mqtt311_envelope_embeds_json_verbatim() -> None:
    message = MessageEncoder("3.1.1", Unsealed()).encode(RECORD, "t")
    assert message.properties is None
    assert message.payload.endswith(b',"payload":{"value":1.5}}')
    envelope = json.loads(message.payload)
    assert (
        envelope["uid"] == "ep-7" and envelope["seq"] == 3 and envelope["content_type"] == "application/json"
    )
    assert read_message(message.payload, None).payload == RECORD.payload


def test_mqtt311_envelope_base64_for_non_json_and_for_broken_json() -> None:
    message = MessageEncoder("3.1.1", Jose()).encode(RECORD, "t")
    assert "payload_base64" in json.loads(message.payload)
    assert read_message(message.payload, None).payload == b"eyJ.sig\xff"
    broken = Record(8, "ep-8", "p/s/r", 4, 0.0, b'{"value":')
    message = MessageEncoder("3.1.1", Unsealed()).encode(broken, "t")
    assert read_message(message.payload, None).payload == b'{"value":'
