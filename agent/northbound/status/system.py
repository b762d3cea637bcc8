"""The appliance's own vital signs, read from /proc and /sys (no extra dependency on the device)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

_START = time.monotonic()


class SystemProbe:
    def __init__(self, disk_path: Path) -> None:
        self.disk_path = disk_path
        self._last_cpu: tuple[float, float] | None = None  # (busy, total) jiffies
        self._last_process: tuple[float, float] | None = None  # (cpu seconds, monotonic)

    def read(self) -> dict[str, Any]:
        return {
            "cpu_percent": self._cpu_percent(),
            "agent_cpu_percent": self._process_cpu_percent(),
            "load": _load(),
            "memory": _memory(),
            "agent_rss_mib": _rss_mib(),
            "temperature_c": _temperature(),
            "disk": self._disk(),
            "uptime_s": _uptime(),
            "agent_uptime_s": round(time.monotonic() - _START, 1),
        }

    def _cpu_percent(self) -> float | None:
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        except (OSError, IndexError):
            return None
        values = [float(v) for v in fields]
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        total = sum(values)
        previous, self._last_cpu = self._last_cpu, (total - idle, total)
        if previous is None or total == previous[1]:
            return None
        return round(100 * (total - idle - previous[0]) / (total - previous[1]), 1)

    def _process_cpu_percent(self) -> float | None:
        times = os.times()
        now = (times.user + times.system, time.monotonic())
        previous, self._last_process = self._last_process, now
        if previous is None or now[1] == previous[1]:
            return None
        return round(100 * (now[0] - previous[0]) / (now[1] - previous[1]), 1)

    def _disk(self) -> dict[str, float] | None:
        try:
            stat = os.statvfs(self.disk_path)
        except OSError:
            return None
        total = stat.f_blocks * stat.f_frsize
        free = stat.f_bavail * stat.f_frsize
        return {
            "total_gib": round(total / 2**30, 2),
            "free_gib": round(free / 2**30, 2),
            "used_percent": round(100 * (1 - free / total), 1) if total else 0.0,
        }


def _load() -> list[float] | None:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return None


def _memory() -> dict[str, float] | None:
    try:
        info = dict(
            line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines() if ":" in line
        )
        total = int(info["MemTotal"].split()[0]) / 1024
        available = int(info["MemAvailable"].split()[0]) / 1024
    except (OSError, KeyError, ValueError):
        return None
    return {
        "total_mib": round(total),
        "available_mib": round(available),
        "used_percent": round(100 * (1 - available / total), 1),
    }


def _rss_mib() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        pass
    return None


def _temperature() -> float | None:
    """The SoC temperature (thermal_zone0 on a Pi); None on machines without thermal zones."""
    for zone in sorted(Path("/sys/class/thermal").glob("thermal_zone*/temp")):
        try:
            return round(int(zone.read_text().strip()) / 1000, 1)
        except (OSError, ValueError):
            continue
    return None


def _uptime() -> float | None:
    try:
        return round(float(Path("/proc/uptime").read_text().split()[0]), 1)
    except (OSError, ValueError, IndexError):
        return None
