"""`msec-agent watch`: the bundled subscriber reads the demo agent's readings over SOX and MQTT as a consumer
would, and verifies their seals against the demo keystore's identity key."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

from agent.demo.services import services_file
from agent.security.keystore.software import SoftwareKeystore

from .conftest import AGENT, DEVICE, DemoAgent, needs_servers, watch

pytestmark = needs_servers

COUNT = 5


def readings(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def test_readings_arrive_over_sox_and_mqtt_signed_by_the_demo_keystore(demo: DemoAgent) -> None:
    result = watch(demo.state_dir, "--count", str(COUNT), "--json")
    assert result.returncode == 0, result.stderr
    seen = readings(result.stdout)
    by_transport = {via: [r for r in seen if r["via"] == via] for via in ("sox", "mqtt")}
    assert {via: len(rs) for via, rs in by_transport.items()} == {"sox": COUNT, "mqtt": COUNT}
    for reading in seen:
        assert reading["verdict"] == "valid", reading
        assert reading["device"] == DEVICE and reading["signing_kid"]
        assert reading["stream"].count("/") == 2 and reading["timestamp"].endswith("Z")
        assert reading["uid"] and isinstance(reading["seq"], int)
    for via, rs in by_transport.items():
        assert len({r["uid"] for r in rs}) == COUNT, f"{via}: duplicates were not dropped"
    assert "SOX: logged in anonymously" in result.stderr and "MQTT: subscribed to msec/" in result.stderr


def test_one_transport_in_text(demo: DemoAgent) -> None:
    for via in ("sox", "mqtt"):
        result = watch(demo.state_dir, via, "--count", "3")
        assert result.returncode == 0, result.stderr
        lines = [line for line in result.stdout.splitlines() if not line.endswith(("online", "offline"))]
        assert len(lines) == 3, result.stdout
        for line in lines:
            # "sox  truck/environment/temperature = 17.5 Cel  2026-01-01T00:00:00.000Z  signed by …: valid"
            stream, stamp = r"[\w.-]+/[\w.-]+/[\w.-]+", r"\d{4}-\d\d-\d\dT[\d:.]+Z"
            assert re.fullmatch(rf"{via} +{stream} = .+  {stamp}  signed by {DEVICE}: valid", line), line


def test_records_from_another_identity_do_not_verify(demo: DemoAgent, tmp_path: Path) -> None:
    # A consumer that registered some other device key: the same servers, a different keystore.
    other = tmp_path / "other"
    services_file(other).parent.mkdir(parents=True)
    shutil.copy(services_file(demo.state_dir), services_file(other))
    SoftwareKeystore(other / "keystore", create_missing=True).close()
    result = watch(other, "mqtt", "--count", "2", "--json")
    assert result.returncode == 1
    verdicts = {r["verdict"] for r in readings(result.stdout)}
    assert verdicts == {"foreign-certificate"}, result.stdout


def test_without_demo_services_watch_says_so(tmp_path: Path) -> None:
    result = watch(tmp_path / "nothing", "--count", "1", timeout=0.5)
    assert result.returncode == 1
    assert "no demo services" in result.stderr and "Traceback" not in result.stderr
    usage = subprocess.run(
        [*AGENT, "watch", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert usage.returncode == 2 and "--demo" in usage.stderr
