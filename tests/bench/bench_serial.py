"""Benchmarks of the serial driver.

    python tests/bench/bench_serial.py [--quick]

1. parsed readings/s per protocol (NMEA GGA+RMC, PMS5003 frames, JSON lines), bytes -> framer -> checked
   parser -> model updates, vs a naive baseline in the same run (str.split / struct at fixed offsets /
   json.loads, no checksum, range or type checks) writing the same model updates;
2. sustained 200 Hz PMS5003 frames from the simulator (a separate process) over a real pty into a running
   driver: readings received vs sent, and the driver process's CPU use (psutil).
Results go to $BENCH_OUT (default out/bench)/serial.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from _common import write_result

from agent.core.model import Model
from agent.drivers.serial import SerialConfig, SerialDriver
from agent.drivers.serial.simulator import DustSensor, GpsRoute, LineSensor, frames

CHUNK = 4096  # what one read of the port returns at most
FIELDS = {
    "temp": {"service": "env", "resource": "temperature", "unit": "Cel", "min": -40, "max": 85},
    "rh": {"service": "env", "resource": "humidity", "unit": "%RH", "min": 0, "max": 100},
}


def make_driver(protocol: str, port: str = "/dev/null", **extra: Any) -> tuple[Model, SerialDriver]:
    config = SerialConfig.model_validate(
        {"type": "serial", "id": protocol, "port": port, "protocol": protocol, **extra}
    )
    model = Model()
    driver = SerialDriver(config, model)
    driver.declare()
    return model, driver


def chunks(stream: bytes) -> list[bytes]:
    return [stream[i : i + CHUNK] for i in range(0, len(stream), CHUNK)]


# -- 1. parsing into the model ------------------------------------------------------------------------


def ours(protocol: str, stream: list[bytes], **extra: Any) -> float:
    _, driver = make_driver(protocol, **extra)
    start = time.perf_counter()
    for chunk in stream:
        driver.feed(chunk)
    elapsed = time.perf_counter() - start
    assert driver.rejected.total == 0, dict(driver.rejected)
    return driver.readings / elapsed


def naive_nmea(model: Model, stream: list[bytes]) -> int:
    count, rest = 0, b""
    for chunk in stream:
        *lines, rest = (rest + chunk).split(b"\n")
        for raw in lines:
            f = raw.decode().split(",")
            lat = float(f[2][:2]) + float(f[2][2:]) / 60 if f[0].endswith("GGA") else None
            if f[0].endswith("GGA") and lat is not None:
                lon = float(f[4][:3]) + float(f[4][3:]) / 60
                point = {"type": "Point", "coordinates": [lon, lat]}
                model.update("truck", "gps", "fix_quality", int(f[6]))
                model.update("truck", "gps", "satellites", int(f[7]))
                model.update("truck", "gps", "position", point)
                model.update("truck", "admin", "location", point)
            elif f[0].endswith("RMC"):
                model.update("truck", "gps", "speed", float(f[7]) * 1.852)
                model.update("truck", "gps", "heading", float(f[8]))
            count += 1
    return count


_PMS = struct.Struct(">4x13H2x")


def naive_pms(model: Model, stream: list[bytes]) -> int:
    count, buffer = 0, b""
    for chunk in stream:
        buffer += chunk
        while (start := buffer.find(b"BM")) >= 0 and len(buffer) - start >= 32:
            words = _PMS.unpack_from(buffer, start)
            buffer = buffer[start + 32 :]
            model.update("truck", "air", "pm1", float(words[3]))
            model.update("truck", "air", "pm25", float(words[4]))
            model.update("truck", "air", "pm10", float(words[5]))
            for name, n in zip(("0_3", "0_5", "1_0", "2_5", "5_0", "10"), words[6:12], strict=True):
                model.update("truck", "air", f"particles_{name}", n)
            count += 1
    return count


def naive_lines(model: Model, stream: list[bytes]) -> int:
    count, rest = 0, b""
    for chunk in stream:
        *lines, rest = (rest + chunk).split(b"\n")
        for raw in lines:
            document = json.loads(raw)
            model.update("truck", "env", "temperature", document["temp"])
            model.update("truck", "env", "humidity", document["rh"])
            count += 1
    return count


def baseline(
    protocol: str, naive: Callable[[Model, list[bytes]], int], stream: list[bytes], **extra: Any
) -> float:
    model, _ = make_driver(protocol, **extra)  # the same resources, declared the same way
    start = time.perf_counter()
    count = naive(model, stream)
    return count / (time.perf_counter() - start)


def parsing(n: int) -> dict[str, Any]:
    cases = {
        "nmea": (b"".join(frames(GpsRoute(seed=1), n // 2)), naive_nmea, {}),  # GGA + RMC: 2 per epoch
        "pms5003": (b"".join(frames(DustSensor(seed=1), n)), naive_pms, {}),
        "lines": (b"".join(frames(LineSensor(seed=1), n)), naive_lines, {"fields": FIELDS}),
    }
    results = {}
    for protocol, (data, naive, extra) in cases.items():
        stream = chunks(data)
        ours(protocol, stream[: len(stream) // 10], **extra)  # warm up
        mine = max(ours(protocol, stream, **extra) for _ in range(3))
        theirs = max(baseline(protocol, naive, stream, **extra) for _ in range(3))
        results[protocol] = {
            "readings_per_s": round(mine),
            "baseline_readings_per_s": round(theirs),
            "ratio_vs_baseline": round(mine / theirs, 3),
            "readings": n,
        }
        print(f"{protocol:8s} {mine:10,.0f} readings/s   naive {theirs:10,.0f}/s   ratio {mine / theirs:.2f}")
    return results


# -- 2. sustained rate over a pty ---------------------------------------------------------------------


async def sustained(rate: float, seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        link = Path(tmp) / "pms"
        command = [sys.executable, "-m", "agent.drivers.serial.simulator", "--protocol", "pms5003"]
        command += ["--link", str(link), "--rate", str(rate), "--seed", "1"]
        simulator = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
        )
        try:
            while not link.exists():
                await asyncio.sleep(0.02)
            _, driver = make_driver("pms5003", port=str(link), baudrate=115200)
            await driver.start()
            task = asyncio.create_task(driver.run())
            while driver.readings == 0:
                await asyncio.sleep(0.01)
            me = psutil.Process()
            cpu0, wall0, readings0 = sum(me.cpu_times()[:2]), time.perf_counter(), driver.readings
            await asyncio.sleep(seconds)
            cpu1, wall1, readings1 = sum(me.cpu_times()[:2]), time.perf_counter(), driver.readings
            await driver.stop()
            await task
        finally:
            simulator.terminate()
            simulator.wait(5)
    achieved = (readings1 - readings0) / (wall1 - wall0)
    cpu = 100 * (cpu1 - cpu0) / (wall1 - wall0)
    print(f"sustained {rate:.0f} Hz over a pty: {achieved:.1f} readings/s, driver process CPU {cpu:.1f} %")
    return {
        "target_hz": rate,
        "achieved_readings_per_s": round(achieved, 1),
        "seconds": seconds,
        "cpu_percent_of_one_core": round(cpu, 1),
        "rejected": dict(driver.rejected),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="smaller runs (CI smoke)")
    args = parser.parse_args()
    n, seconds = (5_000, 3.0) if args.quick else (50_000, 10.0)
    result = {"parsing": parsing(n), "sustained": asyncio.run(sustained(200.0, seconds)), "quick": args.quick}
    print(write_result("serial", result))


if __name__ == "__main__":
    main()
