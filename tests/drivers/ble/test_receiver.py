"""A sensor's receiving state: duplicates dropped quietly, replays and forgeries rejected and counted."""

from __future__ import annotations

import pytest

from agent.drivers.ble.bthome import BTHomeError, Decryptor, encode_encrypted, encode_plain
from agent.drivers.ble.receiver import Receiver

KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
MAC = "54:48:E6:8F:80:A5"


def sealed(counter: int, temperature: float = 21.0) -> bytes:
    return encode_encrypted([(0x02, temperature)], key=KEY, address=MAC, counter=counter)


def reject(receiver: Receiver, data: bytes) -> str:
    with pytest.raises(BTHomeError) as caught:
        receiver.receive(data)
    return caught.value.reason


def test_counters_must_increase() -> None:
    receiver = Receiver(MAC, Decryptor(KEY, MAC))
    assert receiver.receive(sealed(10)).counter == 10
    assert receiver.receive(sealed(10)) is None  # the same advertisement heard again
    assert reject(receiver, sealed(10, 30.0)) == "replayed"  # same counter, other content
    assert reject(receiver, sealed(9)) == "replayed"  # an older frame played back
    assert receiver.receive(sealed(11)).counter == 11
    assert (receiver.accepted, receiver.duplicates, dict(receiver.rejected)) == (2, 1, {"replayed": 2})


def test_rejections_are_counted_by_reason() -> None:
    receiver = Receiver(MAC, Decryptor(KEY, MAC))
    bad = bytearray(sealed(5))
    bad[3] ^= 0xFF
    assert reject(receiver, bytes(bad)) == "decrypt_failed"
    assert reject(receiver, encode_plain([(0x02, 21.0)])) == "not_encrypted"
    assert reject(receiver, b"") == "empty"
    # a failed frame does not advance the counter: the genuine frame 5 still gets in
    assert receiver.receive(sealed(5)) is not None
    assert dict(receiver.rejected) == {"decrypt_failed": 1, "not_encrypted": 1, "empty": 1}


def test_plain_duplicates_only_with_a_packet_id() -> None:
    receiver = Receiver(MAC)
    with_id = encode_plain([(0x00, 1), (0x02, 21.0)])
    without = encode_plain([(0x02, 21.0)])
    assert receiver.receive(with_id) is not None and receiver.receive(with_id) is None
    assert receiver.receive(without) is not None and receiver.receive(without) is not None  # new readings
    assert reject(receiver, sealed(1)) == "no_key"


def test_partial_frame_problems_are_counted() -> None:
    receiver = Receiver(MAC)
    frame = receiver.receive(encode_plain([(0x02, 21.0)]) + b"\xfe\x01")
    assert [r.name for r in frame.readings] == ["temperature"]
    assert dict(receiver.rejected) == {"unknown_object": 1}
