"""ESS characteristic decoders, and GattLink's connect / notify / reconnect loop over the client seam."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.core.runtime import Backoff
from agent.drivers.ble.gatt import (
    HUMIDITY,
    PRESSURE,
    TEMPERATURE,
    GattError,
    GattLink,
    decode,
    encode,
)
from agent.drivers.ble.simulator import SimulatedPeripheral, simulated_client_factory


def test_decodes_the_three_ess_formats() -> None:
    quantity, value = decode(TEMPERATURE, (2345).to_bytes(2, "little"))
    assert (quantity.name, quantity.unit, value) == ("temperature", "Cel", 23.45)
    assert decode(TEMPERATURE, (-1050).to_bytes(2, "little", signed=True))[1] == -10.5
    assert decode(HUMIDITY, bytearray((5055).to_bytes(2, "little")))[1] == 50.55
    quantity, value = decode(PRESSURE, (1013250).to_bytes(4, "little"))  # 101325.0 Pa
    assert (quantity.name, quantity.unit, value) == ("pressure", "hPa", 1013.25)
    assert decode(TEMPERATURE.upper(), encode(TEMPERATURE, 21.5))[1] == 21.5


@pytest.mark.parametrize(
    ("uuid", "data", "reason"),
    [
        (TEMPERATURE, b"\x01", "wrong_length"),
        (TEMPERATURE, b"\x01\x02\x03", "wrong_length"),
        (PRESSURE, b"\x01\x02", "wrong_length"),
        (TEMPERATURE, b"\x00\x80", "unknown_value"),  # the spec's "not known"
        (HUMIDITY, b"\xff\xff", "unknown_value"),
        (HUMIDITY, (10001).to_bytes(2, "little"), "impossible_value"),  # 100.01 %
        (TEMPERATURE, (-30000).to_bytes(2, "little", signed=True), "impossible_value"),  # -300 °C
        ("00002a19-0000-1000-8000-00805f9b34fb", b"\x64", "unknown_characteristic"),  # battery level
    ],
)
def test_bad_values_are_refused_with_a_reason(uuid: str, data: bytes, reason: str) -> None:
    with pytest.raises(GattError) as caught:
        decode(uuid, data)
    assert caught.value.reason == reason


@given(st.sampled_from([TEMPERATURE, HUMIDITY, PRESSURE]), st.binary(max_size=6))
def test_decoders_never_raise_anything_else(uuid: str, data: bytes) -> None:
    try:
        quantity, value = decode(uuid, data)
    except GattError:
        return
    assert quantity.possible(value)


@given(st.integers(-27315, 32767))
def test_temperature_round_trips(hundredths: int) -> None:
    assert decode(TEMPERATURE, encode(TEMPERATURE, hundredths / 100))[1] == pytest.approx(hundredths / 100)


@given(st.integers(0, 2**32 - 1))
def test_pressure_round_trips(tenths_of_pa: int) -> None:
    data = tenths_of_pa.to_bytes(4, "little")
    assert encode(PRESSURE, decode(PRESSURE, data)[1]) == data


class Flaky:
    """A client factory whose first connection attempts fail, then hands out simulated peripherals."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.made: list[SimulatedPeripheral] = []
        self._sim = simulated_client_factory(0.01, seed=1)

    def __call__(self, address, on_disconnect, timeout):
        if self.failures:
            self.failures -= 1
            return _Refusing()
        self.made.append(self._sim(address, on_disconnect, timeout))
        return self.made[-1]


class _Refusing:
    services = None

    async def connect(self):
        from bleak.exc import BleakDeviceNotFoundError

        raise BleakDeviceNotFoundError("AA:BB:CC:DD:EE:FF", "device not found")

    async def disconnect(self):
        return True


async def wait_for(predicate, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)


async def test_link_retries_connects_reconnects_after_a_drop_and_stops() -> None:
    got: list[tuple[str, float]] = []
    factory = Flaky(failures=2)
    link = GattLink(
        "AA:BB:CC:DD:EE:FF",
        lambda quantity, value: got.append((quantity.name, value)),
        factory=factory,
        backoff=Backoff(0.01, 0.05),
    )
    stopping = asyncio.Event()
    task = asyncio.create_task(link.run(stopping))
    await wait_for(lambda: link.connected and len(got) >= 3)
    assert "device not found" in link.last_error or link.last_error == ""
    assert {name for name, _ in got} == {"temperature", "humidity", "pressure"}
    factory.made[-1].drop()  # out of range
    await wait_for(lambda: not link.connected)
    await wait_for(lambda: link.connected and link.connects == 2)
    stopping.set()
    await asyncio.wait_for(task, 2)
    assert not link.connected and not factory.made[-1].is_connected  # disconnected on the way out


async def test_bad_notifications_are_counted_not_raised() -> None:
    got = []
    link = GattLink("AA:BB:CC:DD:EE:FF", lambda q, v: got.append(v), factory=Flaky(0))
    callback = link._notified(HUMIDITY)
    callback(None, bytearray(b"\xff\xff"))
    callback(None, bytearray(b"\x01"))
    callback(None, bytearray((4000).to_bytes(2, "little")))
    assert got == [40.0] and dict(link.rejected) == {"unknown_value": 1, "wrong_length": 1}
