"""The BTHome v2 parser and encoder: published vectors, every object family, and bad input."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from agent.drivers.ble.bthome import (
    OBJECTS,
    REASONS,
    BTHomeError,
    Decryptor,
    encode_encrypted,
    encode_objects,
    encode_plain,
    included_mac,
    mac_bytes,
    parse_objects,
    parse_plain,
)

# The example of the BTHome specification (bthome.io, "Encryption"), used by its reference implementation
# and by other parsers: key, MAC, and the service data of temperature 25.06 °C, humidity 50.55 %.
SPEC_KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
SPEC_MAC = "54:48:E6:8F:80:A5"
SPEC_FRAME = bytes.fromhex("41a47266c95f730011223378237214")  # counter bytes 00 11 22 33
SPEC_FRAME_2 = bytes.fromhex("41e445f3c9962b332211006c7c4519")  # counter 1122867 (bytes 33 22 11 00)
SPEC_PLAIN = bytes.fromhex("4002ca0903bf13")  # the same readings, unencrypted
# With "MAC included" (device info bit 1): the reference implementation's test frames.
SPEC_FRAME_WITH_MAC = bytes.fromhex("43a5808fe64854f196c06ffb4900112233f08ecbde")
PLAIN_WITH_MAC = bytes.fromhex("42b2188d38c1a404138a01")  # A4:C1:38:8D:18:B2, pressure 1008.83 hPa


def values(frame) -> dict[str, object]:
    return {r.name: r.value for r in frame.readings}


def test_published_encrypted_examples_decrypt() -> None:
    decryptor = Decryptor(SPEC_KEY, SPEC_MAC)
    frame = decryptor.parse(SPEC_FRAME)
    assert frame.encrypted and values(frame) == {"temperature": 25.06, "humidity": 50.55}
    assert frame.counter == 0x33221100
    assert decryptor.parse(SPEC_FRAME_2).counter == 1122867


def test_encoder_reproduces_the_published_frames() -> None:
    objects = [(0x02, 25.06), (0x03, 50.55)]
    assert encode_encrypted(objects, key=SPEC_KEY, address=SPEC_MAC, counter=0x33221100) == SPEC_FRAME
    assert encode_encrypted(objects, key=SPEC_KEY, address=SPEC_MAC, counter=1122867) == SPEC_FRAME_2
    assert encode_plain(objects) == SPEC_PLAIN


def test_frames_that_include_their_mac() -> None:
    assert included_mac(PLAIN_WITH_MAC) == "A4:C1:38:8D:18:B2"
    assert values(parse_plain(PLAIN_WITH_MAC)) == {"pressure": 1008.83}
    assert encode_plain([(0x04, 1008.83)], include_mac="A4:C1:38:8D:18:B2") == PLAIN_WITH_MAC
    assert included_mac(SPEC_FRAME_WITH_MAC) == SPEC_MAC
    frame = Decryptor(SPEC_KEY, SPEC_MAC).parse(SPEC_FRAME_WITH_MAC)
    assert values(frame) == {"temperature": 25.06, "humidity": 50.55}
    objects = [(0x02, 25.06), (0x03, 50.55)]
    rebuilt = encode_encrypted(
        objects, key=SPEC_KEY, address=SPEC_MAC, counter=frame.counter, include_mac=True
    )
    assert rebuilt == SPEC_FRAME_WITH_MAC
    assert included_mac(SPEC_PLAIN) is None and included_mac(b"\x42\x01") is None
    with pytest.raises(BTHomeError) as caught:
        parse_plain(b"\x42\x01\x02")
    assert caught.value.reason == "truncated"


def test_plain_frame_with_the_supported_objects() -> None:
    objects = [(0x00, 7), (0x01, 93), (0x02, -12.34), (0x03, 45.6), (0x04, 1013.25), (0x09, 200)]
    objects += [(0x3D, 60000), (0x3E, 4_000_000_000), (0x0C, 3.071), (0x21, True)]
    data = encode_plain(objects)
    frame = parse_plain(data)
    assert frame.packet_id == 7 and not frame.encrypted and not frame.problems
    assert values(frame) == {
        "battery": 93,
        "temperature": -12.34,
        "humidity": 45.6,
        "pressure": 1013.25,
        "count": 200,
        "count_2": 60000,  # a second object of a quantity gets a numbered name
        "count_3": 4_000_000_000,
        "voltage": 3.071,
        "motion": True,
    }
    by_name = {r.name: r.object for r in frame.readings}
    assert by_name["pressure"].unit == "hPa" and by_name["temperature"].service == "environment"
    assert by_name["battery"].service == "power"


def test_trigger_flag_and_skipped_objects() -> None:
    # A button event, a text object (length-prefixed) and firmware info are stepped over, not stored.
    data = bytes([0x44]) + bytes.fromhex("3a01") + bytes([0x53, 3]) + b"abc" + bytes.fromhex("f1 04030201")
    data += encode_objects([(0x02, 21.5)])
    frame = parse_plain(data)
    assert frame.trigger and values(frame) == {"temperature": 21.5} and not frame.problems


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (bytes([0x20, 0x02, 0xC4, 0x09]), "unsupported_version"),  # BTHome v1 bits
        (bytes([0x60, 0x02, 0xC4, 0x09]), "unsupported_version"),  # a future v3
        (bytes([0x41]) + bytes(10), "no_key"),  # encrypted, and we have no key
    ],
)
def test_frames_rejected_whole(data: bytes, reason: str) -> None:
    with pytest.raises(BTHomeError) as caught:
        parse_plain(data)
    assert caught.value.reason == reason and reason in REASONS


@pytest.mark.parametrize(
    ("payload", "kept", "problem"),
    [
        (bytes.fromhex("02ca09 03bf"), {"temperature": 25.06}, "truncated"),  # humidity cut short
        (bytes.fromhex("02ca09 ff0102 03bf13"), {"temperature": 25.06}, "unknown_object"),  # stops at 0xff
        (bytes.fromhex("02ca09 53"), {"temperature": 25.06}, "truncated"),  # text without its length
        (bytes.fromhex("02ca09 5305ab"), {"temperature": 25.06}, "truncated"),  # text shorter than said
        (bytes.fromhex("031036 02ca09"), {"temperature": 25.06}, "impossible_value"),  # humidity 138.4 %
        (bytes.fromhex("01c8 02ca09"), {"temperature": 25.06}, "impossible_value"),  # battery 200 %
        (bytes.fromhex("020080 02ca09"), {"temperature": 25.06}, "impossible_value"),  # -327.68 °C
    ],
)
def test_bad_objects_are_named_and_the_rest_is_kept_when_safe(
    payload: bytes, kept: dict, problem: str
) -> None:
    readings, _, problems = parse_objects(payload)
    assert {r.name: r.value for r in readings} == kept
    assert problems == [problem] and problem in REASONS


def test_wrong_key_tampered_frame_and_wrong_mac_fail_authentication() -> None:
    wrong = Decryptor(bytes(16), SPEC_MAC)
    tampered = bytearray(SPEC_FRAME)
    tampered[2] ^= 0x01
    bad_mic = SPEC_FRAME[:-1] + bytes([SPEC_FRAME[-1] ^ 0x80])
    other_sensor = Decryptor(SPEC_KEY, "54:48:E6:8F:80:A6")  # a frame copied from another sensor
    for decryptor, data in (
        (wrong, SPEC_FRAME),
        (Decryptor(SPEC_KEY, SPEC_MAC), bytes(tampered)),
        (Decryptor(SPEC_KEY, SPEC_MAC), bad_mic),
        (other_sensor, SPEC_FRAME),
    ):
        with pytest.raises(BTHomeError) as caught:
            decryptor.parse(data)
        assert caught.value.reason == "decrypt_failed"


def test_encrypted_device_refuses_plain_and_short_frames() -> None:
    decryptor = Decryptor(SPEC_KEY, SPEC_MAC)
    for data, reason in ((SPEC_PLAIN, "not_encrypted"), (bytes([0x41, 1, 2, 3]), "truncated")):
        with pytest.raises(BTHomeError) as caught:
            decryptor.parse(data)
        assert caught.value.reason == reason


def test_key_never_shown() -> None:
    decryptor = Decryptor(SPEC_KEY, SPEC_MAC)
    assert SPEC_KEY.hex() not in repr(decryptor)
    with pytest.raises(ValueError):
        Decryptor(b"short", SPEC_MAC)
    with pytest.raises(ValueError):
        mac_bytes("54:48:E6")


# --- properties -------------------------------------------------------------------------------------

NUMERIC = {oid: o for oid, o in OBJECTS.items() if o.service and o.kind != "boolean"}


@st.composite
def object_values(draw: st.DrawFn) -> list[tuple[int, float | int]]:
    """Objects with any raw value their size allows that is physically possible."""
    out = []
    for oid in draw(st.lists(st.sampled_from(sorted(NUMERIC)), max_size=8)):
        o = NUMERIC[oid]
        bits = 8 * o.size
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if o.signed else (0, 2**bits - 1)
        raw = draw(st.integers(low, high))
        value = o.decode(raw.to_bytes(o.size, "little", signed=o.signed))
        assume(o.possible(value))
        out.append((oid, value))
    return out


@given(st.binary(max_size=64))
def test_parse_plain_never_raises_anything_but_bthome_error(data: bytes) -> None:
    try:
        frame = parse_plain(data)
    except BTHomeError as error:
        assert error.reason in REASONS
    else:
        assert set(frame.problems) <= set(REASONS)


@given(st.binary(max_size=64), st.binary(min_size=16, max_size=16))
def test_decrypt_never_raises_anything_but_bthome_error(data: bytes, key: bytes) -> None:
    with pytest.raises(BTHomeError) as caught:
        Decryptor(key, SPEC_MAC).parse(bytes([0x41]) + data)
    assert caught.value.reason in REASONS


@given(object_values(), st.integers(0, 2**32 - 1), st.booleans())
def test_encode_then_parse_round_trips(objects, counter: int, encrypted: bool) -> None:
    if encrypted:
        data = encode_encrypted(objects, key=SPEC_KEY, address=SPEC_MAC, counter=counter)
        frame = Decryptor(SPEC_KEY, SPEC_MAC).parse(data)
        assert frame.counter == counter
    else:
        frame = parse_plain(encode_plain(objects))
    assert not frame.problems
    assert [(r.object.id, r.value) for r in frame.readings] == [
        (oid, pytest.approx(value, abs=NUMERIC[oid].factor / 2)) for oid, value in objects
    ]
