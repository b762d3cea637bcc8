"""Benchmark of the BLE driver's receive path: BTHome advertisements parsed into the model.

    python tests/bench/bench_ble.py [--quick]

Frames are real BTHome v2 service data (packet id or counter, battery, temperature, humidity, pressure) from
10 sensors, built by the encoder; each goes through BleDriver.handle_advertisement, as the scanner's
callback does: receiver (duplicate / replay checks), parser, AES-CCM for encrypted ones, model updates.

Baseline, measured in the same run: a naive receive path with the same object table, which builds the
AES-CCM context for every frame and asks the model to ensure each resource before every update. Also
reported: the parser alone (no model), to show where the time goes.
Results go to $BENCH_OUT (default out/bench)/ble.json.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from _common import write_result
from cryptography.hazmat.primitives.ciphers.aead import AESCCM

from agent.core.model import Model, ResourceKind, ResourceSpec, ValueMode, value_type
from agent.drivers.ble import BleConfig, BleDriver
from agent.drivers.ble.bthome import (
    OBJECTS,
    UUID16,
    Decryptor,
    encode_encrypted,
    encode_plain,
    mac_bytes,
    parse_objects,
    parse_plain,
)

KEY = bytes.fromhex("231d39c1d7cc1ab1aee224cd096db932")
SENSORS = [f"A4:C1:38:00:01:{n:02X}" for n in range(10)]


def frames(count: int, encrypted: bool) -> list[tuple[str, bytes]]:
    out = []
    for n in range(count):
        address = SENSORS[n % len(SENSORS)]
        objects: list[tuple[int, float]] = [
            (0x01, 80 + n % 20),
            (0x02, 20 + (n % 500) / 100),
            (0x03, 50 + (n % 300) / 100),
            (0x04, 1000 + (n % 2000) / 100),
        ]
        if encrypted:
            data = encode_encrypted(objects, key=KEY, address=address, counter=n + 1)
        else:
            data = encode_plain([(0x00, (n // len(SENSORS)) % 256), *objects])
        out.append((address, data))
    return out


def driver(encrypted: bool) -> tuple[Model, BleDriver]:
    model = Model()
    devices = [
        {"address": a, "provider": f"s{i}", **({"bind_key": KEY.hex()} if encrypted else {})}
        for i, a in enumerate(SENSORS)
    ]
    ble = BleDriver(BleConfig.model_validate({"type": "ble", "id": "ble", "devices": devices}), model)
    ble._load_receivers()  # what start() does, without a radio
    for i, _ in enumerate(SENSORS):
        model.add_provider(f"s{i}")
    return model, ble


def naive_receiver(encrypted: bool) -> Callable[[str, bytes, int | None], None]:
    """A straightforward receive path: correct, but with none of the driver's caching."""
    model = Model()
    providers = {a: f"s{i}" for i, a in enumerate(SENSORS)}

    def receive(address: str, data: bytes, rssi: int | None) -> None:
        payload = data[1:]
        if data[0] & 1:
            nonce = mac_bytes(address) + UUID16 + data[:1] + data[-8:-4]
            payload = AESCCM(KEY, tag_length=4).decrypt(nonce, data[1:-8] + data[-4:], None)
        readings, _, _ = parse_objects(payload)
        now = time.time()
        for r in readings:
            spec = ResourceSpec(
                value_type(r.object.kind), ResourceKind.SENSOR, ValueMode.UPDATABLE, {"unit": r.object.unit}
            )
            model.ensure_resource(providers[address], r.object.service, r.name, spec)
            model.update(providers[address], r.object.service, r.name, r.value, timestamp=now)

    assert OBJECTS  # same object table as the driver: only the plumbing differs
    return receive


def rate(handle: Callable[[str, bytes, int | None], None], batch: list[tuple[str, bytes]]) -> float:
    start = time.perf_counter()
    for address, data in batch:
        handle(address, data, -60)
    return len(batch) / (time.perf_counter() - start)


def parser_only(batch: list[tuple[str, bytes]], encrypted: bool) -> float:
    decryptors = {a: Decryptor(KEY, a) for a in SENSORS}
    start = time.perf_counter()
    for address, data in batch:
        decryptors[address].parse(data) if encrypted else parse_plain(data)
    return len(batch) / (time.perf_counter() - start)


def measure(count: int, encrypted: bool) -> dict[str, float]:
    label = "encrypted" if encrypted else "plain"
    batch = frames(count, encrypted)
    _, ble = driver(encrypted)
    ours = rate(ble.handle_advertisement, batch)
    accepted = sum(r.accepted for r in ble.receivers.values())
    assert accepted == count, f"only {accepted} of {count} frames accepted"
    baseline = rate(naive_receiver(encrypted), batch)
    parse = parser_only(batch, encrypted)
    print(f"[{label}] parser only: {parse:,.0f} frames/s")
    print(f"[{label}] baseline (naive receive path): {baseline:,.0f} advertisements/s into the model")
    print(f"[{label}] driver: {ours:,.0f} advertisements/s into the model, {ours / baseline:.2f}x baseline")
    return {
        "frames": count,
        "driver_per_s": round(ours),
        "baseline_per_s": round(baseline),
        "ratio": round(ours / baseline, 2),
        "parser_only_per_s": round(parse),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="10,000 frames per case instead of 100,000")
    args = parser.parse_args()
    count = 10_000 if args.quick else 100_000
    result = {"quick": args.quick, "plain": measure(count, False), "encrypted": measure(count, True)}
    print(f"[ble] results written to {write_result('ble', result)}")


if __name__ == "__main__":
    main()
