"""The device profile: the image's defaults, and overrides checked field by field."""

from __future__ import annotations

import pytest
from msec_provision.errors import ProvisioningError
from msec_provision.profile import DeviceProfile


def test_defaults_are_the_image() -> None:
    profile = DeviceProfile()
    assert profile.config_path == "/etc/msec-agent/agent.toml" and profile.config_dir == "/etc/msec-agent"
    assert profile.state_dir == "/var/lib/msec-agent"
    assert profile.provisioning_dir == "/var/lib/msec-agent/provisioning"
    assert profile.restart_command == "systemctl restart msec-agent" and profile.ssh_user == "root"
    assert profile.state_owner == "msec-agent:msec-agent"  # the unit's User=; the keys commands run as root
    # Wi-Fi as Debian bookworm's wpa_supplicant@wlan0 and systemd-networkd expect it.
    assert profile.wifi_config == "/etc/wpa_supplicant/wpa_supplicant-wlan0.conf"
    assert profile.wifi_network.startswith("/etc/systemd/network/") and profile.wifi_network.endswith(
        ".network"
    )
    assert "wpa_supplicant@wlan0.service" in profile.wifi_apply_command


def test_overrides() -> None:
    profile = DeviceProfile.from_table(
        {"state_dir": "/tmp/prefix/state", "environment": {"A": "1"}, "python": "/usr/bin/python3"}, "profile"
    )
    assert profile.state_dir == "/tmp/prefix/state" and profile.environment == {"A": "1"}


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"colour": "red"}, "profile: unknown key(s) colour"),
        ({"config_path": "agent.toml"}, "profile.config_path: expected an absolute path"),
        ({"wifi_config": "wpa.conf"}, "profile.wifi_config: expected an absolute path"),
        ({"wifi_network": "../x.network"}, "profile.wifi_network: expected an absolute path"),
        ({"restart_command": ""}, "profile.restart_command: expected a non-empty string"),
        ({"restart_command": 5}, "profile.restart_command: expected a non-empty string"),
        ({"environment": {"A": 1}}, "profile.environment: expected a table of strings"),
        ({"integrity": "maybe"}, 'profile.integrity: expected "image" or "off"'),
    ],
)
def test_bad_overrides(table: dict[str, object], expected: str) -> None:
    with pytest.raises(
        ProvisioningError, match=expected.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")
    ):
        DeviceProfile.from_table(table, "profile")
