"""The BLE driver component: advertisements and notifications into the model, bad input counted."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.app import build_agent, extensions
from agent.core.config import load_config
from agent.core.model import Model, ResourceKind, ResourceSpec, ValueMode, value_type
from agent.core.runtime import State
from agent.drivers import DRIVERS
from agent.drivers.ble import PLUGIN, BleConfig, BleDriver
from agent.drivers.ble.bthome import encode_encrypted, encode_plain
from tests.conftest import AgentThread, wait_until, write_config

KEY = "231d39c1d7cc1ab1aee224cd096db932"
PLAIN, SEALED, GATT = "A4:C1:38:00:00:01", "A4:C1:38:00:00:02", "A4:C1:38:00:00:03"


def driver(model: Model | None = None, **overrides) -> tuple[Model, BleDriver]:
    model = model or Model()
    raw = {
        "type": "ble",
        "id": "ble",
        "backend": "simulated",
        "simulation": {"interval": 0.02, "seed": 1},
        "devices": [
            {"address": PLAIN, "provider": "cabin", "friendly_name": "Cabin sensor"},
            {"address": SEALED, "provider": "bin", "bind_key": KEY},
        ],
        **overrides,
    }
    return model, BleDriver(BleConfig.model_validate(raw), model)


def sealed(counter: int, temperature: float = 20.0, key: str = KEY) -> bytes:
    return encode_encrypted([(0x02, temperature)], key=bytes.fromhex(key), address=SEALED, counter=counter)


def has_temperature(model: Model, provider: str) -> bool:
    services = model.provider(provider).services
    return "environment" in services and "temperature" in services["environment"].resources


async def test_simulated_radio_feeds_the_real_parser_into_the_model() -> None:
    model, ble = driver(gatt=[{"address": GATT, "provider": "hopper", "reconnect_initial": 0.01}])
    await ble.start()
    task = asyncio.create_task(ble.run())
    try:
        async with asyncio.timeout(5):
            while not all(has_temperature(model, p) for p in ("cabin", "bin", "hopper")):
                await asyncio.sleep(0.01)
    finally:
        await ble.stop()
        await asyncio.wait_for(task, 2)
    for provider in ("cabin", "bin", "hopper"):
        temperature = model.get(provider, "environment", "temperature")
        assert 5 < temperature.value < 35 and temperature.metadata["unit"] == "Cel"
        assert temperature.kind is ResourceKind.SENSOR and temperature.mode is ValueMode.UPDATABLE
        assert model.get(provider, "environment", "pressure").metadata["unit"] == "hPa"
    assert model.provider("cabin").friendly_name == "Cabin sensor"
    assert model.get("bin", "power", "battery").value == 87
    assert model.get("cabin", "link", "rssi").metadata["unit"] == "dBm"
    stats = ble.stats()
    assert stats["scanning"] == "off"
    assert stats["bthome"][SEALED]["accepted"] >= 1 and stats["bthome"][SEALED]["rejected"] == {}
    assert stats["gatt"][GATT]["connects"] == 1 and stats["gatt"][GATT]["readings"] >= 3


async def test_bad_advertisements_are_counted_logged_and_never_raise(caplog) -> None:
    model, ble = driver()
    await ble.start()
    await ble.stop()  # the simulated radio goes quiet: only what the test sends arrives
    caplog.set_level(logging.DEBUG, logger="agent.drivers.ble")
    tampered = bytearray(sealed(100))
    tampered[2] ^= 1
    for address, data in [
        (PLAIN, b""),
        (PLAIN, b"\x40\x02\xc4"),  # truncated temperature
        (PLAIN, b"\x20\x02\xc4\x09"),  # BTHome v1
        (PLAIN, b"\x40\xfe\x00"),  # unknown object
        (PLAIN, b"\x40\x03\x10\x36"),  # humidity 138 %
        (SEALED, sealed(101, key="00" * 16)),  # wrong key
        (SEALED, bytes(tampered)),
        (SEALED, encode_plain([(0x02, 99.0)])),  # a forged plain frame for an encrypted sensor
        (SEALED, sealed(200, 21.0)),  # genuine
        (SEALED, sealed(150, 99.0)),  # replay of an older frame
        ("11:22:33:44:55:66", encode_plain([(0x02, 1.0)])),  # not ours
    ]:
        ble.handle_advertisement(address, data, -70)
    assert model.get("bin", "environment", "temperature").value == 21.0  # only the genuine frame
    assert "environment" not in model.provider("cabin").services
    stats = ble.stats()
    assert stats["bthome"][PLAIN]["rejected"] == {
        "empty": 1,
        "truncated": 1,
        "unsupported_version": 1,
        "unknown_object": 1,
        "impossible_value": 1,
    }
    assert stats["bthome"][SEALED]["rejected"] == {"decrypt_failed": 2, "not_encrypted": 1, "replayed": 1}
    assert stats["ignored"] == 1
    assert KEY not in caplog.text
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 8  # one per device and reason; the second decrypt failure only at debug


async def test_a_sensor_with_a_random_address_is_found_by_its_included_mac() -> None:
    model, ble = driver()
    ble._load_receivers()
    key = bytes.fromhex(KEY)
    frame = encode_encrypted([(0x02, 19.5)], key=key, address=SEALED, counter=3, include_mac=True)
    ble.handle_advertisement("7A:11:22:33:44:55", frame, -50)  # a resolvable private address
    assert model.get("bin", "environment", "temperature").value == 19.5 and ble.ignored == 0


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([PLAIN, SEALED]), st.binary(max_size=40), st.one_of(st.none(), st.integers(-127, 20)))
def test_handle_advertisement_never_raises(address: str, data: bytes, rssi: int | None) -> None:
    _, ble = driver()
    ble._load_receivers()
    ble.handle_advertisement(address, data, rssi)


async def test_unusable_keys_degrade_health_without_showing_the_key(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    bad_file = tmp_path / "key"
    bad_file.write_text("not-a-key-at-all-but-secret-text\n")
    monkeypatch.setenv("BIN_KEY", KEY)
    model, ble = driver(
        devices=[
            {"address": PLAIN, "provider": "cabin", "bind_key": f"file:{bad_file}"},
            {"address": SEALED, "provider": "bin", "bind_key": "env:BIN_KEY"},
            {"address": GATT, "provider": "hopper", "bind_key": "env:MISSING_KEY"},
        ]
    )
    await ble.start()
    try:
        assert ble.health().state is State.DEGRADED
        assert sorted(ble.key_problems) == [PLAIN, GATT]
        assert "not hex" in ble.key_problems[PLAIN] and "MISSING_KEY" in ble.key_problems[GATT]
        ble.handle_advertisement(SEALED, sealed(1, 22.5), None)  # the env key works
        assert model.get("bin", "environment", "temperature").value == 22.5
        ble.handle_advertisement(PLAIN, encode_plain([(0x02, 1.0)]), None)  # no receiver: ignored
    finally:
        await ble.stop()
    assert "secret-text" not in caplog.text and KEY not in caplog.text and "not hex" in caplog.text


async def test_a_conflicting_model_declaration_is_counted_not_raised() -> None:
    model = Model()
    model.ensure_resource("bin", "environment", "temperature", ResourceSpec(value_type("string")))
    _, ble = driver(model)
    ble._load_receivers()
    ble.handle_advertisement(SEALED, sealed(1), None)
    assert ble.errors["model_rejected"] == 1 and model.get("bin", "environment", "temperature").value is None


def test_the_agent_runs_the_ble_plugin_from_a_config_file(tmp_path: Path) -> None:
    drivers = {**DRIVERS, PLUGIN.type: PLUGIN}  # what agent/drivers/__init__.py will register
    path = write_config(
        tmp_path,
        f"""
[[drivers]]
type = "ble"
id = "ble"
backend = "simulated"
simulation = {{ interval = 0.05 }}
devices = [{{ address = "{SEALED}", provider = "bin", bind_key = "{KEY}" }}]
""",
    )
    agent = build_agent(load_config(path, extensions(drivers)), drivers)
    runner = AgentThread(agent).start()
    try:
        wait_until(
            lambda: "bin" in agent.model and agent.model.get("bin", "environment", "humidity").has_value
        )
    finally:
        runner.stop()
