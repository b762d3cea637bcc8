"""The GPIO driver on gpiozero's MockFactory: pins are driven and read as on a real board."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from pydantic import ValidationError

from agent.core.model import Model, ReadOnlyResource, ResourceKind, ValueMode
from agent.drivers.gpio import GpioConfig, GpioDriver
from agent.drivers.gpio.debounce import PulseCounter

LID, RAIN, LED = 17, 27, 22


async def until(predicate: Callable[[], object], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def config(**overrides: object) -> GpioConfig:
    return GpioConfig.model_validate(
        {
            "type": "gpio",
            "id": "gpio",
            "pin_factory": "mock",
            "inputs": [{"service": "lid", "resource": "open", "pin": LID, "bounce": 0.03}],
            "counters": [{"service": "rain", "pin": RAIN, "bounce": 0.01, "per_pulse": 0.2794, "unit": "mm"}],
            "outputs": [{"service": "led", "pin": LED}],
            **overrides,
        }
    )


@asynccontextmanager
async def running(cfg: GpioConfig | None = None) -> AsyncIterator[tuple[Model, GpioDriver]]:
    model = Model()
    driver = GpioDriver(cfg or config(), model)
    await driver.start()
    task = asyncio.create_task(driver.run())
    try:
        yield model, driver
    finally:
        await driver.stop()
        await asyncio.wait_for(task, 5)


def value(model: Model, service: str, resource: str) -> object:
    return model.get("truck", service, resource).value


async def test_resources_are_declared() -> None:
    async with running() as (model, _):
        lid = model.get("truck", "lid", "open")
        assert lid.kind is ResourceKind.STATE_VARIABLE and lid.mode is ValueMode.UPDATABLE
        assert lid.value is False  # pulled up, switch open: inactive
        assert model.get("truck", "rain", "total").metadata["unit"] == "mm"
        assert model.get("truck", "led", "state").mode is ValueMode.MODIFIABLE
        for action in ("turn_on", "turn_off", "toggle", "blink"):
            assert model.get("truck", "led", action).kind is ResourceKind.ACTION


async def test_a_bouncing_lid_switch_reports_its_settled_level_once() -> None:
    async with running() as (model, driver):
        changes = model.subscribe("lid", filter=lambda e: e.path == "truck/lid/open" and e.value is not None)
        pin = driver.factory.pin(LID)
        for _ in range(5):  # contact bounce, faster than the 30 ms debounce
            pin.drive_low()
            pin.drive_high()
        pin.drive_low()  # settles active (pulled-up switch closed to ground)
        await until(lambda: value(model, "lid", "open") is True)
        await asyncio.sleep(0.06)
        assert [e.value for e in changes.get_batch(100, 0)] == [True]
        pin.drive_high()
        await until(lambda: value(model, "lid", "open") is False)
        with pytest.raises(ReadOnlyResource):
            model.set("truck", "lid", "open", True)  # a client cannot forge a sensor


async def test_rain_gauge_counts_pulses_and_ignores_bounce() -> None:
    async with running() as (model, driver):
        pin = driver.factory.pin(RAIN)
        for _ in range(3):
            pin.drive_low()  # a tip: active low
            pin.drive_high()
            pin.drive_low()  # chatter right after it: within the 10 ms lockout
            pin.drive_high()
            await asyncio.sleep(0.03)
        await until(lambda: value(model, "rain", "pulses") == 3)
        assert value(model, "rain", "total") == pytest.approx(3 * 0.2794)
        assert driver.stats()["bounces"] == {"rain": 3}


def test_pulse_counter_lockout() -> None:
    now = [0.0]
    counter = PulseCounter(0.01, clock=lambda: now[0])
    assert [counter.pulse() for _ in range(2)] == [1, None]
    now[0] = 0.02
    assert counter.pulse() == 2 and counter.bounced == 1


async def test_led_actions_drive_the_pin_and_the_state() -> None:
    async with running() as (model, driver):
        pin = driver.factory.pin(LED)
        assert model.act("truck", "led", "turn_on") is True
        assert pin.state and value(model, "led", "state") is True
        assert model.act("truck", "led", "toggle") is False
        assert not pin.state and value(model, "led", "state") is False
        assert model.act("truck", "led", "turn_off") is False and not pin.state
        model.act("truck", "led", "blink", {"on_time": 0.02, "off_time": 0.02, "n": 3})
        assert value(model, "led", "state") is True
        await until(lambda: len([s for s in pin.states if s.state]) >= 3)
        await until(lambda: value(model, "led", "state") is False)  # refreshed once it ended
        assert not pin.state


async def test_setting_the_state_drives_the_pin() -> None:
    async with running() as (model, driver):
        pin = driver.factory.pin(LED)
        model.set("truck", "led", "state", True)
        await until(lambda: pin.state)
        model.set("truck", "led", "state", False)
        await until(lambda: not pin.state)


async def test_restart_releases_and_reclaims_its_pins() -> None:
    model = Model()
    driver = GpioDriver(config(), model)
    for _ in range(2):
        driver.reset()
        await driver.start()
        assert model.act("truck", "led", "turn_on") is True
        await driver.stop()
    driver.factory.pin(RAIN).drive_low()  # stopped: no callback, no error
    assert value(model, "rain", "pulses") == 0


@pytest.mark.parametrize(
    "bad",
    [
        {"pin_factory": "magic"},
        {"outputs": [{"service": "led", "pin": LID}]},  # pin used twice
        {"outputs": [{"service": "led", "pin": 99}]},
        {"inputs": [], "counters": [], "outputs": []},
        {"inputs": [{"service": "lid", "pin": 5, "bounce": -1}]},
        {"counters": [{"service": "rain", "pin": 27, "per_pulse": 0}]},
    ],
)
def test_config_rejects_garbage(bad: dict) -> None:
    with pytest.raises(ValidationError):
        config(**bad)
