"""Simulated serial sensors that write real frames to a pseudo-terminal.

The driver under test (or in the demo) opens a real tty with pyserial, exactly as on the truck: only the
device at the other end is simulated. `link` is a symlink to the pty's slave that the simulator controls,
so unplugging (closing the pty and removing the link) and replugging (a new pty behind the same link) look
to the driver like a USB adapter pulled and put back.

    python -m agent.drivers.serial.simulator --protocol nmea --link /tmp/msec-gps [--rate 1]
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import os
import random
import signal
import threading
import time
import tty
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from ..simulated.driver import ROUTE, _position_on_route  # one Fujisawa route for every simulation
from . import nmea, pms5003

Source = Callable[[float], bytes]  # the bytes a sensor sends at (unix) time t


class GpsRoute:
    """A truck on the Fujisawa collection loop: a GGA and an RMC sentence per epoch."""

    def __init__(self, speed_kmh: float = 25.0, seed: int | None = None) -> None:
        self.speed_kmh = speed_kmh
        self.random = random.Random(seed)
        self.distance = 0.0
        self.last: float | None = None

    def __call__(self, now: float) -> bytes:
        speed = max(0.0, self.speed_kmh + self.random.gauss(0, 1))
        if self.last is not None:
            self.distance += speed / 3.6 * max(0.0, now - self.last)
        self.last = now
        (lat1, lon1), (lat2, lon2), fraction = _position_on_route(self.distance)
        lat, lon = lat1 + (lat2 - lat1) * fraction, lon1 + (lon2 - lon1) * fraction
        heading = math.degrees(math.atan2((lon2 - lon1) * math.cos(math.radians(lat)), lat2 - lat1)) % 360
        moment = datetime.fromtimestamp(now, UTC)
        hms, date = (
            moment.strftime("%H%M%S.") + f"{moment.microsecond // 10000:02d}",
            moment.strftime("%d%m%y"),
        )
        return nmea.gga(hms, lat, lon) + nmea.rmc(hms, lat, lon, speed, heading, date=date)


class DustSensor:
    """A PMS5003 in city air: PM2.5 around 12 µg/m³ with the odd spike (a garbage truck's own exhaust)."""

    def __init__(self, seed: int | None = None) -> None:
        self.random = random.Random(seed)

    def __call__(self, now: float) -> bytes:
        pm25 = max(0, round(12 + self.random.gauss(0, 2) + (40 if self.random.random() < 0.02 else 0)))
        return pms5003.encode(max(0, pm25 - 4), pm25, pm25 + 6)


class LineSensor:
    """A generic sensor printing JSON lines: temperature and humidity."""

    def __init__(self, seed: int | None = None) -> None:
        self.random = random.Random(seed)

    def __call__(self, now: float) -> bytes:
        reading = {
            "temp": round(20 + self.random.gauss(0, 0.3), 2),
            "rh": round(55 + self.random.gauss(0, 1), 1),
        }
        return json.dumps(reading).encode() + b"\n"


SOURCES: dict[str, Callable[[int | None], Source]] = {
    "nmea": lambda seed: GpsRoute(seed=seed),
    "pms5003": lambda seed: DustSensor(seed),
    "lines": lambda seed: LineSensor(seed),
}


class PtyDevice:
    """A pty whose slave is reachable at `link`; what is written to the master is what the driver reads."""

    def __init__(self, link: str | os.PathLike[str]) -> None:
        self.link = Path(link)
        self.master: int | None = None
        self.slave: int | None = None
        self.dropped = 0  # bytes nobody read (no driver attached and the tty buffer full)
        self.plug()

    def plug(self) -> None:
        self.master, self.slave = os.openpty()
        # Raw, so the tty neither echoes nor rewrites bytes before the driver opens it (pyserial sets raw
        # mode too, once it does). The slave stays open here so the pty survives between driver opens.
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)  # never stall the simulator on a full buffer
        temporary = self.link.with_name(self.link.name + ".new")
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        temporary.symlink_to(os.ttyname(self.slave))
        os.replace(temporary, self.link)  # atomic: the link is never half made

    def unplug(self) -> None:
        """The device disappears: its path goes, and a reader's next read fails."""
        with contextlib.suppress(FileNotFoundError):
            self.link.unlink()
        for fd in (self.master, self.slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.master = self.slave = None

    @property
    def plugged(self) -> bool:
        return self.master is not None

    def write(self, data: bytes) -> int:
        if self.master is None:
            self.dropped += len(data)
            return 0
        try:
            written = os.write(self.master, data)
        except OSError as error:
            if error.errno not in (errno.EAGAIN, errno.EIO):
                raise
            written = 0
        self.dropped += len(data) - written
        return written

    def close(self) -> None:
        self.unplug()


class Simulator:
    """Writes a source's bytes to a pty at `rate_hz`, on a thread (tests) or the main thread (the CLI)."""

    def __init__(self, link: str | os.PathLike[str], source: Source, rate_hz: float = 1.0) -> None:
        self.device = PtyDevice(link)
        self.source = source
        self.rate_hz = rate_hz
        self.sent = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()  # unplug/replug from a test thread while the writer runs
        self._thread: threading.Thread | None = None

    def send(self, data: bytes) -> int:
        with self._lock:
            return self.device.write(data)

    def run(self) -> None:
        period = 1.0 / self.rate_hz
        start, tick = time.monotonic(), 0
        while not self._stop.is_set():
            if self.send(self.source(time.time())):
                self.sent += 1
            tick += 1
            # A fixed schedule: the rate does not drift with the time spent writing.
            self._stop.wait(max(0.0, start + tick * period - time.monotonic()))

    def start(self) -> Simulator:
        self._thread = threading.Thread(target=self.run, name="serial-simulator", daemon=True)
        self._thread.start()
        return self

    def unplug(self) -> None:
        with self._lock:
            self.device.unplug()

    def replug(self) -> None:
        with self._lock:
            self.device.plug()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2)
        self.device.close()

    def __enter__(self) -> Simulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def frames(source: Source, count: int, start: float = 1_700_000_000.0) -> Iterator[bytes]:
    """`count` consecutive outputs of a source, one simulated second apart (tests, benchmarks)."""
    for n in range(count):
        yield source(start + n)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--protocol", choices=sorted(SOURCES), required=True)
    parser.add_argument("--link", required=True, help="symlink to create for the pty's slave")
    parser.add_argument("--rate", type=float, default=1.0, help="frames per second")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    if not 0 < args.rate <= 10_000:
        parser.error("--rate must be in (0, 10000]")
    simulator = Simulator(args.link, SOURCES[args.protocol](args.seed), args.rate)
    signal.signal(signal.SIGTERM, lambda *_: simulator._stop.set())
    print(f"simulating {args.protocol} on {args.link} -> {os.readlink(args.link)}", flush=True)
    try:
        simulator.run()
    except KeyboardInterrupt:
        pass
    finally:
        simulator.device.close()
    return 0


__all__ = ["ROUTE", "DustSensor", "GpsRoute", "LineSensor", "PtyDevice", "Simulator", "frames", "main"]

if __name__ == "__main__":
    raise SystemExit(main())
