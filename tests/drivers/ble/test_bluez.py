"""bleak's real BlueZ backend against a simulated BlueZ on a private D-Bus: scanning and GATT.

Nothing here is faked above D-Bus: BleakScanner and BleakClient talk to org.bluez over dbus-fast exactly as on
the truck; only bluetoothd is replaced by python-dbusmock (see conftest.py and fake_bluez.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from agent.core.model import Model
from agent.drivers.ble import BleConfig, BleDriver
from agent.drivers.ble.bthome import encode_encrypted, encode_plain
from agent.drivers.ble.gatt import HUMIDITY, PRESSURE, TEMPERATURE, encode

KEY = "231d39c1d7cc1ab1aee224cd096db932"
PLAIN, SEALED, ESS = "A4:C1:38:00:00:01", "A4:C1:38:00:00:02", "A4:C1:38:00:00:03"


def ble_driver(model: Model, **overrides) -> BleDriver:
    raw = {
        "type": "ble",
        "id": "ble",
        "devices": [
            {"address": PLAIN, "provider": "cabin"},
            {"address": SEALED, "provider": "bin", "bind_key": KEY},
        ],
        **overrides,
    }
    return BleDriver(BleConfig.model_validate(raw), model)


async def until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


def value(model: Model, provider: str, service: str, resource: str) -> object:
    services = model.provider(provider).services
    if service not in services or resource not in services[service].resources:
        return None
    return services[service].resources[resource].value


async def scan_and_check(bluez, mode: str, expected_mode: str) -> BleDriver:
    model = Model()
    plain, sealed = bluez.add_device(PLAIN), bluez.add_device(SEALED)
    stranger = bluez.add_device("11:22:33:44:55:66")
    ble = ble_driver(model, scanning_mode=mode)
    await ble.start()
    try:
        assert ble.stats()["scanning"] == expected_mode
        bluez.advertise(plain, encode_plain([(0x00, 1), (0x02, 21.5), (0x03, 40.0)]), rssi=-48)
        bluez.advertise(
            sealed, encode_encrypted([(0x02, 7.25)], key=bytes.fromhex(KEY), address=SEALED, counter=5)
        )
        bluez.advertise(stranger, encode_plain([(0x02, 99.0)]))
        await until(lambda: value(model, "cabin", "environment", "humidity") == 40.0)
        await until(lambda: value(model, "bin", "environment", "temperature") == 7.25)
        assert value(model, "cabin", "link", "rssi") == -48
        # A tampered frame and a replayed counter arrive through BlueZ and are refused.
        forged = bytearray(
            encode_encrypted([(0x02, 50.0)], key=bytes.fromhex(KEY), address=SEALED, counter=6)
        )
        forged[1] ^= 0x55
        bluez.advertise(sealed, bytes(forged))
        bluez.advertise(
            sealed, encode_encrypted([(0x02, 60.0)], key=bytes.fromhex(KEY), address=SEALED, counter=4)
        )
        await until(lambda: sum(ble.stats()["bthome"][SEALED]["rejected"].values()) == 2)
        assert ble.stats()["bthome"][SEALED]["rejected"] == {"decrypt_failed": 1, "replayed": 1}
        assert value(model, "bin", "environment", "temperature") == 7.25
        assert ble.stats()["ignored"] >= 1
    finally:
        await ble.stop()
    return ble


async def test_passive_scanning_through_bleak_and_bluez(bluez) -> None:
    ble = await scan_and_check(bluez, "passive", "passive")
    assert ble.stats()["scanning"] == "off"


async def test_active_scanning(bluez) -> None:
    await scan_and_check(bluez, "active", "active")


async def test_auto_falls_back_to_active_without_the_advertisement_monitor(bluez, caplog) -> None:
    bluez.without_passive_scanning()
    await scan_and_check(bluez, "auto", "active")
    assert "passive scanning unavailable" in caplog.text


async def test_passive_only_fails_without_the_advertisement_monitor(bluez) -> None:
    from bleak.exc import BleakError

    bluez.without_passive_scanning()
    ble = ble_driver(Model(), scanning_mode="passive")
    try:
        await ble.start()
    except BleakError as error:  # the supervisor records this and retries with backoff
        assert "passive scanning" in str(error)
    else:
        raise AssertionError("passive scanning started without an advertisement monitor")
    finally:
        await ble.stop()


async def test_gatt_notifications_drop_and_reconnect(bluez) -> None:
    model = Model()
    chars = bluez.add_ess_peripheral(ESS)
    device_path = chars[TEMPERATURE].rsplit("/", 2)[0]
    ble = ble_driver(
        model,
        devices=[],
        gatt=[{"address": ESS, "provider": "hopper", "reconnect_initial": 0.05, "connect_timeout": 5.0}],
    )
    (link,) = ble.links
    await ble.start()
    assert ble.scanning == "off"  # GATT only: nothing to scan for
    task = asyncio.create_task(ble.run())
    try:
        await until(lambda: link.connected)
        bluez.notify(chars[TEMPERATURE], encode(TEMPERATURE, 23.45))
        bluez.notify(chars[HUMIDITY], encode(HUMIDITY, 61.5))
        bluez.notify(chars[PRESSURE], encode(PRESSURE, 1009.87))
        await until(lambda: value(model, "hopper", "environment", "pressure") == 1009.87)
        assert value(model, "hopper", "environment", "temperature") == 23.45
        assert value(model, "hopper", "environment", "humidity") == 61.5
        bluez.notify(chars[HUMIDITY], b"\xff\xff")  # "not known": refused, counted
        await until(lambda: link.rejected["unknown_value"] == 1)

        bluez.drop(device_path)  # out of range
        await until(lambda: not link.connected)
        await until(lambda: link.connected and link.connects == 2)  # backoff, rediscover, reconnect
        bluez.notify(chars[TEMPERATURE], encode(TEMPERATURE, -4.5))
        await until(lambda: value(model, "hopper", "environment", "temperature") == -4.5)
    finally:
        await ble.stop()
        await asyncio.wait_for(task, 10)
    assert not link.connected
