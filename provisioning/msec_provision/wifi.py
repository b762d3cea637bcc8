"""Wi-Fi for the image's OS, not for the agent: a wpa_supplicant config for wlan0 and a systemd-networkd
unit that gives wlan0 an address (the image's own `80-msec-wired.network` matches Ethernet only).

The passphrase is turned into the 64-hex-digit PSK here (PBKDF2-HMAC-SHA1, 4096 rounds, the SSID as the
salt: IEEE 802.11i), so the device never stores it; it is never printed, logged or kept by the tool.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from .errors import ProvisioningError

HEX_PSK = re.compile(r"^[0-9a-fA-F]{64}$")
COUNTRY = re.compile(r"^[A-Z]{2}$")

NETWORK_UNIT = (
    "# Written by the M-Sec provisioning tool: wlan0 (associated by wpa_supplicant@wlan0) by DHCP.\n"
    "[Match]\nName=wlan0\n\n[Network]\nDHCP=yes\n\n[DHCPv4]\nUseDomains=yes\n"
)


@dataclass(frozen=True)
class WifiSettings:
    ssid: str
    psk_ref: str  # a secret reference: the passphrase (8-63 characters) or the 64-hex-digit PSK
    country: str | None = None  # ISO 3166 alpha-2: wpa_supplicant's regulatory domain


def check_ssid(ssid: object, where: str) -> str:
    if not isinstance(ssid, str):
        raise ProvisioningError(f"{where}: expected a string")
    size = len(ssid.encode("utf-8"))
    if size == 0:
        raise ProvisioningError(f"{where}: must not be empty")
    if size > 32:
        raise ProvisioningError(f"{where}: {size} bytes in UTF-8; an SSID has at most 32")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in ssid):
        raise ProvisioningError(f"{where}: control characters are not allowed")
    return ssid


def check_country(country: object, where: str) -> str:
    if not isinstance(country, str) or not COUNTRY.fullmatch(country):
        raise ProvisioningError(f"{where}: expected a two-letter country code like 'JP'")
    return country


def derive_psk(ssid: str, passphrase: str, where: str) -> str:
    """The 256-bit PSK in hex. The message never contains the passphrase."""
    if HEX_PSK.fullmatch(passphrase):
        return passphrase.lower()
    if not 8 <= len(passphrase) <= 63 or not all(0x20 <= ord(c) <= 0x7E for c in passphrase):
        raise ProvisioningError(
            f"{where}: a WPA passphrase is 8 to 63 printable ASCII characters (or give the 64-hex PSK)"
        )
    key = hashlib.pbkdf2_hmac("sha1", passphrase.encode("ascii"), ssid.encode("utf-8"), 4096, 32)
    return key.hex()


def supplicant_config(settings: WifiSettings, psk: str) -> bytes:
    """The SSID is written in hex: no quoting rule of wpa_supplicant's parser can be broken by it."""
    lines = [
        "# Written by the M-Sec provisioning tool; re-run provisioning to change it.",
        "ctrl_interface=DIR=/run/wpa_supplicant GROUP=netdev",
        "update_config=0",
    ]
    if settings.country:
        lines.append(f"country={settings.country}")
    lines += [
        "",
        "network={",
        f"\tssid={settings.ssid.encode('utf-8').hex()}",
        "\tscan_ssid=1",
        "\tkey_mgmt=WPA-PSK",
        f"\tpsk={psk}",
        "}",
    ]
    return ("\n".join(lines) + "\n").encode()
