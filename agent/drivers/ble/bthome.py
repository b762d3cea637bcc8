"""BTHome v2: parse (and, for simulators and tests, build) the service data of UUID 0xFCD2.

A BTHome advertisement carries service data ``[device info][objects...]``. The device info byte holds the
format version (bits 5-7, must be 2), the trigger flag (bit 2), "MAC included" (bit 1: a sensor using a
random address puts its identity MAC, reversed, before the objects) and the encryption flag (bit 0).
Each object is an id byte followed by a little-endian value whose length the id fixes, so an unknown id
ends parsing: we cannot know where the next object starts.

Encrypted frames are ``[device info][MAC?][ciphertext][counter: 4][MIC: 4]``: AES-CCM with a per-device
16-byte bind key and the nonce ``MAC(6) + UUID16(2) + device info(1) + counter(4)``. The MAC in the nonce
binds a frame to its sensor: one copied from another sensor does not authenticate.

Parsing never raises anything but ``BTHomeError`` (whose ``reason`` is one of ``REASONS``, safe to count
and log), and never logs or formats the key.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

BTHOME_UUID: Final = "0000fcd2-0000-1000-8000-00805f9b34fb"
UUID16: Final = b"\xd2\xfc"  # 0xFCD2, little-endian as on air and in the nonce
KEY_BYTES: Final = 16
MIC_BYTES: Final = 4
COUNTER_BYTES: Final = 4
MAC_BYTES: Final = 6

ENCRYPTED_FLAG: Final = 0x01
MAC_INCLUDED_FLAG: Final = 0x02  # the sensor's identity MAC (reversed) follows the device info byte
TRIGGER_FLAG: Final = 0x04
VERSION_2: Final = 2 << 5

# Why a frame (or part of one) was not used. Counters are keyed by these, so they are a closed set.
REASONS: Final = (
    "empty",  # no service data at all
    "unsupported_version",  # device info says BTHome v1 or a future version
    "truncated",  # an object's value, or the encryption trailer, is cut short
    "unknown_object",  # an object id we do not know: parsing stops there, earlier objects are kept
    "impossible_value",  # a value outside what the quantity can physically be (humidity 140 %)
    "no_key",  # encrypted frame from a device without a bind key
    "not_encrypted",  # plain frame from a device that has a bind key: refused, it could be forged
    "decrypt_failed",  # wrong key or tampered frame: the MIC did not verify
    "replayed",  # an encrypted frame whose counter is not newer than the last one accepted
)


class BTHomeError(Exception):
    """A frame rejected as a whole. ``reason`` is one of REASONS; the message never holds key material."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ObjectType:
    """One BTHome object id: how many bytes its value takes and what it means."""

    id: int
    name: str  # resource name in the model ("" for objects we step over without keeping)
    service: str
    size: int  # bytes of the value; 0 means "length-prefixed" (text, raw)
    signed: bool = False
    factor: float = 1.0
    unit: str = ""
    kind: str = "double"  # model value type: double, long or boolean
    low: float | None = None  # physically possible range; outside it the value is refused
    high: float | None = None

    def decode(self, raw: bytes) -> float | int | bool:
        number = int.from_bytes(raw, "little", signed=self.signed)
        if self.kind == "boolean":
            return number != 0
        if self.kind == "long":
            return number
        # round(): 2345 * 0.01 is 23.450000000000003; the object's own resolution is what it means.
        return round(number * self.factor, _decimals(self.factor))

    def encode(self, value: float | int | bool) -> bytes:
        number = int(value) if self.kind != "double" else round(value / self.factor)
        return number.to_bytes(self.size, "little", signed=self.signed)

    def possible(self, value: float | int | bool) -> bool:
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


def _decimals(factor: float) -> int:
    text = f"{factor:.10f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


ENV, POWER, COUNT, STATE, SKIP = "environment", "power", "counter", "state", ""
_ABS_ZERO = -273.15


def _types() -> dict[int, ObjectType]:
    t = ObjectType
    table = [
        t(0x00, "packet_id", SKIP, 1, kind="long"),  # used to drop repeated advertisements, not stored
        t(0x01, "battery", POWER, 1, unit="%", low=0, high=100),
        t(0x02, "temperature", ENV, 2, True, 0.01, "Cel", low=_ABS_ZERO),
        t(0x03, "humidity", ENV, 2, False, 0.01, "%RH", low=0, high=100),
        t(0x04, "pressure", ENV, 3, False, 0.01, "hPa"),
        t(0x05, "illuminance", ENV, 3, False, 0.01, "lx"),
        t(0x08, "dewpoint", ENV, 2, True, 0.01, "Cel", low=_ABS_ZERO),
        t(0x09, "count", COUNT, 1, kind="long"),
        t(0x0C, "voltage", POWER, 2, False, 0.001, "V"),
        t(0x0D, "pm25", ENV, 2, unit="ug/m3"),
        t(0x0E, "pm10", ENV, 2, unit="ug/m3"),
        t(0x0F, "generic", STATE, 1, kind="boolean"),
        t(0x11, "opening", STATE, 1, kind="boolean"),
        t(0x12, "co2", ENV, 2, unit="ppm"),
        t(0x13, "tvoc", ENV, 2, unit="ug/m3"),
        t(0x14, "moisture", ENV, 2, False, 0.01, "%", low=0, high=100),
        t(0x15, "battery_low", POWER, 1, kind="boolean"),
        t(0x21, "motion", STATE, 1, kind="boolean"),
        t(0x2E, "humidity", ENV, 1, unit="%RH", low=0, high=100),
        t(0x2F, "moisture", ENV, 1, unit="%", low=0, high=100),
        t(0x3A, "", SKIP, 1),  # button event: not a reading
        t(0x3C, "", SKIP, 2),  # dimmer event
        t(0x3D, "count", COUNT, 2, kind="long"),
        t(0x3E, "count", COUNT, 4, kind="long"),
        t(0x45, "temperature", ENV, 2, True, 0.1, "Cel", low=_ABS_ZERO),
        t(0x46, "uv_index", ENV, 1, False, 0.1),
        t(0x4A, "voltage", POWER, 2, False, 0.1, "V"),
        t(0x53, "", SKIP, 0),  # text, length-prefixed
        t(0x54, "", SKIP, 0),  # raw bytes, length-prefixed
        t(0x57, "temperature", ENV, 1, True, 1.0, "Cel"),
        t(0x59, "count", COUNT, 1, True, kind="long"),
        t(0x5A, "count", COUNT, 2, True, kind="long"),
        t(0x5B, "count", COUNT, 4, True, kind="long"),
        t(0xF0, "", SKIP, 2),  # device type id
        t(0xF1, "", SKIP, 4),  # firmware version (4 bytes)
        t(0xF2, "", SKIP, 3),  # firmware version (3 bytes)
    ]
    return {o.id: o for o in table}


OBJECTS: Final[dict[int, ObjectType]] = _types()
PACKET_ID: Final = 0x00


@dataclass(frozen=True, slots=True)
class Reading:
    object: ObjectType
    value: float | int | bool
    name: str  # resource name; "temperature_2" for the second temperature in one frame


@dataclass(frozen=True, slots=True)
class Frame:
    """A parsed advertisement: what it said, and what of it had to be left out (``problems``)."""

    encrypted: bool
    trigger: bool
    readings: tuple[Reading, ...]
    packet_id: int | None = None
    counter: int | None = None
    problems: tuple[str, ...] = field(default=())


def mac_bytes(address: str) -> bytes:
    """'54:48:E6:8F:80:A5' -> b'TH\\xe6\\x8f\\x80\\xa5', the order used in the nonce."""
    raw = bytes.fromhex(address.replace(":", "").replace("-", ""))
    if len(raw) != 6:
        raise ValueError("expected a 6-byte Bluetooth address")
    return raw


def parse_objects(payload: bytes) -> tuple[list[Reading], int | None, list[str]]:
    """Walks the object list. Stops (keeping what came before) at an unknown id or a cut value."""
    readings: list[Reading] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    packet_id: int | None = None
    i, end = 0, len(payload)
    while i < end:
        obj = OBJECTS.get(payload[i])
        if obj is None:
            problems.append("unknown_object")
            break
        start = i + 1
        size = obj.size
        if size == 0:  # length-prefixed
            if start >= end:
                problems.append("truncated")
                break
            size, start = payload[start], start + 1
        stop = start + size
        if stop > end:
            problems.append("truncated")
            break
        i = stop
        if obj.id == PACKET_ID:
            packet_id = payload[start]
            continue
        if not obj.name:
            continue
        value = obj.decode(payload[start:stop])
        if not obj.possible(value):
            problems.append("impossible_value")
            continue
        count = seen[obj.name] = seen.get(obj.name, 0) + 1
        readings.append(Reading(obj, value, obj.name if count == 1 else f"{obj.name}_{count}"))
    return readings, packet_id, problems


def _device_info(data: bytes) -> int:
    if not data:
        raise BTHomeError("empty")
    info = data[0]
    if info >> 5 != 2:
        raise BTHomeError("unsupported_version", f"version {info >> 5}")
    return info


def _frame(info: int, payload: bytes, counter: int | None) -> Frame:
    readings, packet_id, problems = parse_objects(payload)
    return Frame(
        bool(info & ENCRYPTED_FLAG),
        bool(info & TRIGGER_FLAG),
        tuple(readings),
        packet_id,
        counter,
        tuple(problems),
    )


def _objects_start(info: int, data: bytes) -> int:
    if not info & MAC_INCLUDED_FLAG:
        return 1
    if len(data) < 1 + MAC_BYTES:
        raise BTHomeError("truncated", "shorter than the included MAC")
    return 1 + MAC_BYTES


def included_mac(data: bytes) -> str | None:
    """The identity MAC a v2 frame carries (upper case, as configured), or None."""
    if len(data) < 1 + MAC_BYTES or data[0] >> 5 != 2 or not data[0] & MAC_INCLUDED_FLAG:
        return None
    return ":".join(f"{b:02X}" for b in reversed(data[1 : 1 + MAC_BYTES]))


def parse_plain(data: bytes) -> Frame:
    """Parses an unencrypted frame (the service data of 0xFCD2, without the UUID)."""
    info = _device_info(data)
    if info & ENCRYPTED_FLAG:
        raise BTHomeError("no_key")
    return _frame(info, data[_objects_start(info, data) :], None)


class Decryptor:
    """One device's bind key, with its AES-CCM context built once (most of a decrypt's cost otherwise)."""

    __slots__ = ("_cipher", "_mac")

    def __init__(self, key: bytes, address: str) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError("a BTHome bind key is 16 bytes")
        self._cipher = AESCCM(key, tag_length=MIC_BYTES)
        self._mac = mac_bytes(address)

    def __repr__(self) -> str:
        return "Decryptor(***)"

    def open(self, data: bytes) -> tuple[int, bytes, int]:
        """Returns (device info, plaintext objects, counter) of an encrypted frame."""
        info = _device_info(data)
        if not info & ENCRYPTED_FLAG:
            raise BTHomeError("not_encrypted")
        start = _objects_start(info, data)
        if len(data) < start + COUNTER_BYTES + MIC_BYTES:
            raise BTHomeError("truncated", "shorter than the encryption trailer")
        counter_bytes = data[-(COUNTER_BYTES + MIC_BYTES) : -MIC_BYTES]
        # Our configured MAC, not the one the frame claims: a frame is bound to the sensor we expect.
        nonce = self._mac + UUID16 + data[:1] + counter_bytes
        try:
            plain = self._cipher.decrypt(
                nonce, data[start : -(COUNTER_BYTES + MIC_BYTES)] + data[-MIC_BYTES:], None
            )
        except InvalidTag:
            raise BTHomeError("decrypt_failed") from None
        return info, plain, int.from_bytes(counter_bytes, "little")

    def parse(self, data: bytes) -> Frame:
        info, plain, counter = self.open(data)
        return _frame(info, plain, counter)


# --- building frames (simulators, tests, the demo) ---------------------------------------------------


def encode_objects(objects: Iterable[tuple[int, float | int | bool]]) -> bytes:
    """Object list bytes, in the order given (the spec asks senders for ascending ids)."""
    out = bytearray()
    for object_id, value in objects:
        out.append(object_id)
        out += OBJECTS[object_id].encode(value)
    return bytes(out)


def _info(flags: int, trigger: bool, include_mac: bool) -> int:
    return VERSION_2 | flags | (TRIGGER_FLAG if trigger else 0) | (MAC_INCLUDED_FLAG if include_mac else 0)


def encode_plain(
    objects: Sequence[tuple[int, float | int | bool]],
    *,
    trigger: bool = False,
    include_mac: str | None = None,
) -> bytes:
    """An unencrypted frame; `include_mac` puts that identity MAC in it (a sensor with a random address)."""
    mac = mac_bytes(include_mac)[::-1] if include_mac else b""
    return bytes([_info(0, trigger, bool(include_mac))]) + mac + encode_objects(objects)


def encode_encrypted(
    objects: Sequence[tuple[int, float | int | bool]],
    *,
    key: bytes,
    address: str,
    counter: int,
    trigger: bool = False,
    include_mac: bool = False,
) -> bytes:
    """An encrypted frame as a BTHome sensor sends it (service data without the UUID)."""
    info = bytes([_info(ENCRYPTED_FLAG, trigger, include_mac)])
    counter_bytes = counter.to_bytes(COUNTER_BYTES, "little")
    nonce = mac_bytes(address) + UUID16 + info + counter_bytes
    sealed = AESCCM(key, tag_length=MIC_BYTES).encrypt(nonce, encode_objects(objects), None)
    mac = mac_bytes(address)[::-1] if include_mac else b""
    return info + mac + sealed[:-MIC_BYTES] + counter_bytes + sealed[-MIC_BYTES:]
