"""The unit files, checked on the build host with systemd's own tools (fast; the boot test checks them live):
`systemd-analyze verify` finds nothing wrong, the agent's exposure is at most 2.5, and the directives the
appliance relies on are there."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

SYSTEMD = Path(__file__).resolve().parents[2] / "systemd"
UNITS = sorted(SYSTEMD.glob("*.service"))
MAX_EXPOSURE = 2.5


def directives(unit: Path) -> dict[str, list[str]]:
    """Key -> values, in order (systemd allows a key many times)."""
    found: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


@pytest.fixture(scope="module")
def analyze() -> str:
    tool = shutil.which("systemd-analyze")
    assert tool, "systemd-analyze is needed (Debian package systemd)"
    return tool


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_verifies(analyze: str, unit: Path) -> None:
    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    # The build host has not installed the image's programs; every other complaint is a real one.
    complaints = [
        line
        for line in (result.stdout + result.stderr).splitlines()
        if line.strip() and "is not executable: No such file or directory" not in line
    ]
    assert complaints == []


def test_agent_exposure_is_at_most_2_5(analyze: str) -> None:
    result = subprocess.run(
        [analyze, "security", "--offline=true", str(SYSTEMD / "msec-agent.service")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for msec-agent\.service: ([0-9.]+)", result.stdout)
    assert match, result.stdout[-500:] + result.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE


def test_agent_unit_has_what_the_appliance_relies_on() -> None:
    unit = directives(SYSTEMD / "msec-agent.service")
    single = {key: values[-1] for key, values in unit.items()}
    assert single["Type"] == "notify" and single["NotifyAccess"] == "main"
    assert int(single["WatchdogSec"]) > 0
    assert single["Restart"] == "on-failure" and single["RestartPreventExitStatus"] == "78"
    assert int(single["StartLimitBurst"]) > 0 and int(single["StartLimitIntervalSec"]) > 0
    assert single["User"] == "msec-agent" and single["StateDirectory"] == "msec-agent"
    assert single["ConfigurationDirectory"] == "msec-agent"
    assert "${CONFIGURATION_DIRECTORY}/agent.toml" in single["ExecStart"]
    assert single["ProtectSystem"] == "strict" and single["ReadWritePaths"] == "/var/lib/msec-agent"
    assert single["NoNewPrivileges"] == "yes" and single["CapabilityBoundingSet"] == ""
    assert single["DevicePolicy"] == "closed"
    assert set(unit["DeviceAllow"]) == {
        "/dev/tpmrm0 rw",
        *(
            f"char-{kind} rw"
            for kind in ("ttyS", "ttyAMA", "ttyUSB", "ttyACM", "gpiochip", "video4linux", "media")
        ),
    }
    assert "AF_BLUETOOTH" in single["RestrictAddressFamilies"].split()
    # Offline must not block the start: the agent neither pulls in nor waits for the network.
    assert "network-online.target" not in unit.get("Wants", []) + unit.get("Requires", [])


def test_first_boot_runs_once_before_ssh_and_the_agent() -> None:
    unit = directives(SYSTEMD / "msec-firstboot.service")
    assert unit["ConditionPathExists"] == ["!/var/lib/msec-firstboot/done"]
    assert {"ssh.service", "msec-agent.service"} <= set(" ".join(unit["Before"]).split())
    assert unit["Type"] == ["oneshot"]
