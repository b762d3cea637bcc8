"""The serial driver end to end: pyserial reads a real pty written by the simulator.

The configured port is a symlink in tmp_path that the simulator controls: unplugging closes the pty and
removes the link, replugging opens a new pty behind the same link, as a USB adapter pulled and put back.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.core.model import Model, ReadOnlyResource, ValueMode
from agent.core.runtime.component import State
from agent.drivers.serial import PLUGIN, SerialConfig, SerialDriver, nmea, pms5003
from agent.drivers.serial.simulator import DustSensor, GpsRoute, Simulator


async def until(predicate: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


FAST = {"reconnect_initial": 0.05, "reconnect_max": 0.2}


def config(link: Path, protocol: str, **extra: object) -> SerialConfig:
    return SerialConfig.model_validate(
        {"type": "serial", "id": protocol, "port": str(link), "protocol": protocol, **FAST, **extra}
    )


@asynccontextmanager
async def running(cfg: SerialConfig) -> AsyncIterator[tuple[Model, SerialDriver]]:
    model = Model()
    driver = SerialDriver(cfg, model)
    await driver.start()
    task = asyncio.create_task(driver.run())
    try:
        yield model, driver
    finally:
        await driver.stop()
        await asyncio.wait_for(task, 5)


def value(model: Model, service: str, resource: str, provider: str = "truck") -> object:
    return model.get(provider, service, resource).value


async def test_gps_position_reaches_admin_location_and_the_gps_service(tmp_path: Path) -> None:
    link = tmp_path / "gps"
    with Simulator(link, GpsRoute(seed=1), rate_hz=20).start():
        async with running(config(link, "nmea")) as (model, driver):
            await until(lambda: value(model, "admin", "location") is not None and driver.readings >= 10)
            await until(lambda: driver.health().state is State.OK)
            location = value(model, "admin", "location")
            assert location["type"] == "Point"
            lon, lat = location["coordinates"]
            assert 139.48 < lon < 139.50 and 35.33 < lat < 35.35  # [lon, lat], on the Fujisawa loop
            assert value(model, "gps", "position") == location
            assert value(model, "gps", "fix_quality") == 1 and value(model, "gps", "satellites") == 9
            assert 15 < value(model, "gps", "speed") < 35
            assert model.get("truck", "gps", "speed").metadata["unit"] == "km/h"
            assert model.get("truck", "admin", "location").mode is ValueMode.UPDATABLE
            with pytest.raises(ReadOnlyResource):
                model.set("truck", "admin", "location", {"type": "Point", "coordinates": [0, 0]})
            assert dict(driver.rejected) == {}


async def test_bad_input_is_counted_by_reason_and_the_driver_goes_on(tmp_path: Path) -> None:
    link = tmp_path / "pms"
    sim = Simulator(link, DustSensor(seed=1))  # not started: the test writes each byte itself
    with sim:
        async with running(config(link, "pms5003")) as (model, driver):
            await until(lambda: driver.health().state is State.OK)
            good = pms5003.encode(5, 12, 20)
            corrupt = bytearray(pms5003.encode(5, 12, 20))
            corrupt[12] ^= 0xFF
            sim.send(b"\x00garbage\xff" + good[:13] + bytes(corrupt) + pms5003.encode(900, 12, 20))
            sim.send(pms5003.encode(6, 13, 21))
            await until(lambda: value(model, "air", "pm25") == 13.0)
            rejected = dict(driver.rejected)
            assert rejected.keys() >= {"garbage", "checksum", "range"}, rejected
            assert value(model, "air", "pm1") == 6.0 and value(model, "air", "particles_0_3") == 900
            assert model.get("truck", "air", "pm25").metadata["unit"] == "ug/m3"
            await until(lambda: "checksum=" in driver.health().detail)
            assert driver.health().state is State.OK  # bad input is no outage


async def test_a_flood_of_lines_and_non_utf8_are_refused(tmp_path: Path) -> None:
    link = tmp_path / "lines"
    fields = {"temp": {"service": "env", "resource": "temperature", "unit": "Cel", "min": -40, "max": 85}}
    with Simulator(link, lambda now: b"") as sim:
        async with running(config(link, "lines", fields=fields, max_line=64)) as (model, driver):
            await until(lambda: driver.health().state is State.OK)
            sim.send(b"A" * 3000)  # no newline: must not grow a buffer
            sim.send(b'\n{"temp": "\xff\xfe"}\n{"temp": 300}\n{"temp": 21.5}\n')
            await until(lambda: value(model, "env", "temperature") == 21.5)
            assert dict(driver.rejected) == {"line_too_long": 1, "encoding": 1, "range": 1}
            assert len(driver.protocol.framer._buffer) == 0


async def test_unplug_mid_frame_and_replug_are_survived_with_backoff(tmp_path: Path) -> None:
    link = tmp_path / "pms"
    with Simulator(link, DustSensor(seed=2)) as sim:
        async with running(config(link, "pms5003")) as (model, driver):
            await until(lambda: driver.health().state is State.OK)
            sim.send(pms5003.encode(1, 2, 3))
            await until(lambda: driver.readings == 1)
            sim.send(pms5003.encode(4, 5, 6)[:20])  # the device goes away mid-frame
            await until(lambda: driver.reader.bytes_read >= 52)
            sim.unplug()
            await until(lambda: driver.health().state is State.DEGRADED)
            await until(lambda: "unavailable" in driver.health().detail)
            assert driver.rejected["truncated"] == 1
            await asyncio.sleep(0.3)  # a few failed reopen attempts, backing off
            assert driver.reader.backoff.attempts >= 2
            sim.replug()  # a new pty behind the same path
            await until(lambda: driver.health().state is State.OK)
            sim.send(pms5003.encode(7, 8, 9))
            await until(lambda: value(model, "air", "pm1") == 7.0)
            stats = driver.stats()
            assert stats["connects"] == 2 and stats["disconnects"] == 1 and stats["readings"] == 2


async def test_the_simulator_runs_as_a_process(tmp_path: Path) -> None:
    link = tmp_path / "gps"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent.drivers.serial.simulator",
            *("--protocol", "nmea", "--link", str(link)),
            *("--rate", "20", "--seed", "1"),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        await until(link.exists)
        async with running(config(link, "nmea")) as (model, driver):
            await until(lambda: value(model, "admin", "location") is not None)
            assert driver.rejected.total == 0
    finally:
        process.terminate()
        assert process.wait(5) == 0
    assert not link.exists()  # the device went away with its simulator


async def test_restart_after_stop_reuses_the_model(tmp_path: Path) -> None:
    link = tmp_path / "gps"
    model = Model()
    driver = SerialDriver(config(link, "nmea"), model)
    with Simulator(link, lambda now: b"") as sim:
        for n in range(2):  # what the supervisor does after a failure: reset, start, run
            driver.reset()
            await driver.start()
            task = asyncio.create_task(driver.run())
            await until(lambda: driver.reader.connected)  # opening a port flushes what came before
            sim.send(nmea.gga(f"12000{n}.00", 35.34, 139.49))
            await until(lambda n=n: driver.readings == n + 1)
            await driver.stop()
            await asyncio.wait_for(task, 5)


def test_a_real_agent_runs_the_plugin(tmp_path: Path) -> None:
    from agent.app import build_agent, extensions
    from agent.core.config import load_config
    from agent.drivers import DRIVERS
    from tests.conftest import AgentThread, wait_until, write_config

    drivers = {**DRIVERS, PLUGIN.type: PLUGIN}
    link = tmp_path / "gps"
    body = f'[[drivers]]\ntype = "serial"\nid = "gps"\nport = "{link}"\nprotocol = "nmea"\n'
    with Simulator(link, GpsRoute(seed=3), rate_hz=20).start():
        agent_config = load_config(write_config(tmp_path, body), extensions(drivers))
        runner = AgentThread(build_agent(agent_config, drivers)).start()
        try:
            wait_until(lambda: runner.agent.model.get("truck", "admin", "location").value is not None)
        finally:
            runner.stop()


@pytest.mark.parametrize(
    "bad",
    [
        {"baudrate": 0},
        {"baudrate": "9600"},
        {"parity": "X"},
        {"protocol": "modbus"},
        {"protocol": "lines"},  # lines without a mapping
        {"protocol": "lines", "fields": {"t": {"service": "a/b", "resource": "t"}}},
        {"protocol": "lines", "fields": {"t": {"service": "a", "resource": "t", "min": 5, "max": 1}}},
        {"max_line": 1},
        {"colour": 1},
    ],
)
def test_config_rejects_garbage(bad: dict) -> None:
    with pytest.raises(ValidationError):
        SerialConfig.model_validate(
            {"type": "serial", "id": "s", "port": "/dev/tty0", "protocol": "nmea", **bad}
        )


async def test_simulated_device_feeds_the_real_parser_through_a_pty() -> None:
    """`simulate = true`: the demo's serial sensors, real frames over a real pty, read by pyserial."""
    model = Model()
    config = SerialConfig.model_validate(
        {"type": "serial", "id": "pms", "protocol": "pms5003", "simulate": True, "simulate_rate": 50.0}
    )
    driver = SerialDriver(config, model)
    await driver.start()
    task = asyncio.create_task(driver.run())
    try:
        for _ in range(200):
            if driver.readings >= 3:
                break
            await asyncio.sleep(0.05)
        assert driver.readings >= 3
        link = driver.simulator.device.link
        assert link.is_symlink() and str(link.resolve()).startswith("/dev/pts/")
    finally:
        await driver.stop()
        await asyncio.wait_for(task, 5)
    assert not link.parent.exists()  # the temporary link is cleaned up


def test_a_port_is_required_unless_simulated() -> None:
    with pytest.raises(ValidationError, match="needs a port"):
        SerialConfig.model_validate({"type": "serial", "id": "x", "protocol": "nmea"})
