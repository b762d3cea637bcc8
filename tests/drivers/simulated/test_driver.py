"""The simulated truck: resources it adds, readings it makes, and its beacon actuator."""

from __future__ import annotations

import asyncio

import pytest

from agent.core.model import EventType, Model, ReadOnlyResource, ResourceKind, ValueMode
from agent.drivers.simulated import SimulatedConfig, SimulatedVehicle


def vehicle(**overrides) -> tuple[Model, SimulatedVehicle]:
    model = Model()
    config = SimulatedConfig.model_validate({"type": "simulated", "id": "sim", "seed": 3, **overrides})
    return model, SimulatedVehicle(config, model)


async def test_start_declares_its_resources_with_units_and_modes() -> None:
    model, truck = vehicle()
    await truck.start()
    temperature = model.get("truck", "environment", "temperature")
    assert temperature.kind is ResourceKind.SENSOR and temperature.mode is ValueMode.UPDATABLE
    assert temperature.metadata["unit"] == "Cel"
    assert model.get("truck", "admin", "location").mode is ValueMode.UPDATABLE  # GPS-owned
    assert model.get("truck", "beacon", "switch").kind is ResourceKind.ACTION
    await truck.start()  # a restart finds everything in place


async def test_steps_produce_plausible_readings_and_a_moving_position() -> None:
    model, truck = vehicle()
    await truck.start()
    positions = []
    for n in range(20):
        truck.step(1_700_000_000 + n)
        positions.append(tuple(model.get("truck", "admin", "location").value["coordinates"]))
    assert 5 < model.get("truck", "environment", "temperature").value < 35
    assert 0 <= model.get("truck", "environment", "humidity").value <= 100
    assert model.get("truck", "air", "pm25").value >= 0
    assert len(set(positions)) > 10
    for lon, lat in positions:
        assert 139.48 < lon < 139.50 and 35.33 < lat < 35.35  # on the Fujisawa loop
    with pytest.raises(ReadOnlyResource):
        model.set("truck", "admin", "location", {"type": "Point", "coordinates": [0, 0]})


async def test_without_gps_no_gps_service() -> None:
    model, truck = vehicle(gps=False)
    await truck.start()
    truck.step(1_700_000_000)
    assert "gps" not in model.provider("truck").services
    assert model.get("truck", "admin", "location").value is None


async def test_beacon_action_sets_its_state() -> None:
    model, truck = vehicle()
    await truck.start()
    assert model.act("truck", "beacon", "switch", {"on": True}) is True
    assert model.get("truck", "beacon", "on").value is True
    assert model.act("truck", "beacon", "switch", {"on": False}) is False
    assert model.get("truck", "beacon", "on").value is False


async def test_run_produces_at_its_rate_until_stopped() -> None:
    model, truck = vehicle(rate_hz=100.0)
    await truck.start()
    sub = model.subscribe("count", maxsize=100_000, filter=lambda e: e.type is EventType.VALUE_UPDATED)
    task = asyncio.create_task(truck.run())
    await asyncio.sleep(0.3)
    await truck.stop()
    await asyncio.wait_for(task, 2)
    ticks = len([e for e in sub.get_batch(100_000, 0) if e.path == "truck/environment/temperature"])
    assert ticks >= 5  # not a timing claim: only that it ran repeatedly and stopped when asked


def test_config_rejects_garbage() -> None:
    from pydantic import ValidationError

    for bad in (
        {"rate_hz": 0},
        {"rate_hz": float("inf")},
        {"rate_hz": "2"},
        {"provider": "a/b"},
        {"colour": 1},
    ):
        with pytest.raises(ValidationError):
            SimulatedConfig.model_validate({"type": "simulated", "id": "sim", **bad})
