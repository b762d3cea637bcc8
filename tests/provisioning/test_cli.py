"""`provision` as the operator types it: the dry-run plan, usage errors, the summary table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from msec_provision.cli import main, summary_table
from msec_provision.provisioner import Outcome

from .sshd import REPO, keypair

FLEET = """
[fleet]
operator_key = "keys/operator"

[xmpp]
domain = "sox.example.org"
admin_jid = "operator@sox.example.org"
admin_password = "env:NOT_NEEDED_FOR_A_PLAN"

[[devices]]
id = "truck-7"
host = "192.0.2.7"
host_key_fingerprint = "SHA256:kZYlG9KZX2kcZ1RNWiMDT7BygjyDMpcvN1Yxv+2tNqE"

[[devices]]
id = "truck-8"
host = "192.0.2.8"
"""


def fleet_file(tmp_path: Path, text: str = FLEET) -> Path:
    keypair(tmp_path / "keys/operator", "operator")
    (tmp_path / "fleet.toml").write_text(text)
    return tmp_path / "fleet.toml"


def test_dry_run_prints_the_plan_and_touches_nothing(tmp_path: Path) -> None:
    path = fleet_file(tmp_path)
    result = subprocess.run(
        [sys.executable, str(REPO / "provisioning/provision"), str(path), "--dry-run"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "truck-7: the plan" in out and "truck-8: the plan" in out
    assert "1/8 connect   ssh root@192.0.2.7:22" in out and "SHA256:kZYlG9" in out
    assert "first contact: REFUSE" in out  # truck-8 has no fingerprint and no --accept-new-host-key
    assert "systemctl restart msec-agent" in out and "/etc/msec-agent/agent.toml" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fleet.toml", "keys"]  # no inventory, no pins


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = fleet_file(tmp_path)
    assert main([str(path), "--device", "truck-99"]) == 2
    assert main([str(tmp_path / "missing.toml")]) == 2
    (tmp_path / "bad.toml").write_text("[fleet\n")
    assert main([str(tmp_path / "bad.toml")]) == 2
    (tmp_path / "keys/operator.pub").unlink()
    assert main([str(path), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "no such device" in err and "truck-99" in err
    assert "cannot read the fleet file" in err and "not a valid TOML file" in err
    assert "operator.pub" in err


def test_summary_table() -> None:
    table = summary_table(
        [
            Outcome("truck-7", "provisioned", ["agent.toml", "agent restarted"], seconds=12.34),
            Outcome("truck-8", "failed", [], "truck-8: host unreachable\n(check it)", 1.0, "connect"),
            Outcome("truck-9", "unchanged", [], seconds=3.0),
        ]
    )
    lines = table.splitlines()
    assert lines[0].split() == ["device", "result", "seconds", "detail"]
    assert lines[2].split()[:3] == ["truck-7", "provisioned", "12.3"] and "agent restarted" in lines[2]
    assert "host unreachable (check it)" in lines[3]  # one line per device
    assert lines[4].endswith("no change")


def test_dry_run_plans_mqtt_credentials_and_wifi(tmp_path: Path) -> None:
    text = FLEET.replace(
        "[[devices]]",
        '[mqtt]\nhost = "127.0.0.1"\nport = 1884\nadmin_username = "operator"\n'
        'admin_password = "env:NOT_NEEDED_FOR_A_PLAN"\n\n'
        '[wifi]\nssid = "depot"\npsk = "env:NOT_NEEDED_EITHER"\n\n[[devices]]',
        1,
    )
    result = subprocess.run(
        [sys.executable, str(REPO / "provisioning/provision"), str(fleet_file(tmp_path, text)), "--dry-run"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "4/8 creds" in out and "MQTT client truck-7 at 127.0.0.1:1884" in out
    assert "msec-device-truck-7: publish msec/truck-7/# only, password sealed as tpm:mqtt-password" in out
    assert (
        "5/8 config" in out
        and "Wi-Fi /etc/wpa_supplicant/wpa_supplicant-wlan0.conf (0600, SSID 'depot'" in out
    )
    assert "9/8" not in out and "6/8 ssh" in out
