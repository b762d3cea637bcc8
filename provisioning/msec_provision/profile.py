"""The device profile: where things are on the device and how its agent is restarted.

The defaults describe the SD image (systemd unit `msec-agent`, SSH as root with a key). Tests point every
path and command at a temporary prefix; a fleet file can override any field.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import ProvisioningError


@dataclass(frozen=True)
class DeviceProfile:
    ssh_user: str = "root"
    config_path: str = "/etc/msec-agent/agent.toml"
    state_dir: str = "/var/lib/msec-agent"
    # The keys commands run as root over SSH; the agent runs as its own user (the unit's User=), so what
    # they leave in the state directory (sealed blobs, the claim) is handed over before every (re)start.
    state_owner: str = "msec-agent:msec-agent"
    agent_command: str = "msec-agent"  # shell words; the image installs it on PATH
    python: str = "python3"  # the device's interpreter, for the /healthz probe (no curl on the image)
    enable_command: str = "systemctl enable msec-agent"
    restart_command: str = "systemctl restart msec-agent"
    healthz_url: str = "http://127.0.0.1:8080/healthz"
    authorized_keys: str = "/root/.ssh/authorized_keys"
    sshd_dropin: str = "/etc/ssh/sshd_config.d/50-msec-provisioned.conf"
    sshd_reload_command: str = "systemctl reload ssh"
    # Wi-Fi is the OS's (Debian bookworm, systemd-networkd): wpa_supplicant@wlan0 reads this file.
    wifi_config: str = "/etc/wpa_supplicant/wpa_supplicant-wlan0.conf"
    wifi_network: str = "/etc/systemd/network/80-msec-wlan0.network"  # DHCP on wlan0
    # --no-block: a device whose wlan0 is not there (yet) must not hang the run waiting for it.
    wifi_apply_command: str = (
        "systemctl enable wpa_supplicant@wlan0.service && "
        "systemctl restart --no-block wpa_supplicant@wlan0.service && networkctl reload"
    )
    environment: dict[str, str] = field(default_factory=dict)  # set for every device command
    # "image": the agent.toml gets the image's [integrity] table (agent_config.IMAGE_INTEGRITY), so the
    # provisioned agent keeps checking its signed files at every start; "off": a device without the image's
    # manifest (a development install). Provisioning owns the table: a template cannot drop or change it.
    integrity: str = "image"

    @property
    def config_dir(self) -> str:
        return posixpath.dirname(self.config_path)

    @property
    def provisioning_dir(self) -> str:
        """The tool's own state on the device: the claim (device id) and the keys-only config."""
        return posixpath.join(self.state_dir, "provisioning")

    @classmethod
    def from_table(cls, table: dict[str, Any], where: str) -> DeviceProfile:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise ProvisioningError(f"{where}: unknown key(s) {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, value in table.items():
            if name == "environment":
                if not isinstance(value, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in value.items()
                ):
                    raise ProvisioningError(f"{where}.environment: expected a table of strings")
                values[name] = dict(value)
            elif not isinstance(value, str) or not value.strip():
                raise ProvisioningError(f"{where}.{name}: expected a non-empty string")
            else:
                values[name] = value
        profile = cls(**values)
        if profile.integrity not in ("image", "off"):
            raise ProvisioningError(f'{where}.integrity: expected "image" or "off"')
        for name in (
            "config_path",
            "state_dir",
            "authorized_keys",
            "sshd_dropin",
            "wifi_config",
            "wifi_network",
        ):
            if not posixpath.isabs(getattr(profile, name)):
                raise ProvisioningError(f"{where}.{name}: expected an absolute path on the device")
        return profile
