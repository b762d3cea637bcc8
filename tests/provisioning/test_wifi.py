"""Wi-Fi for the OS: the SSID's limits, the PSK derived as 802.11i says (its published test vectors), and
a wpa_supplicant file that no SSID can break out of."""

from __future__ import annotations

import pytest
from msec_provision.errors import ProvisioningError
from msec_provision.wifi import WifiSettings, check_country, check_ssid, derive_psk, supplicant_config


def test_psk_matches_the_ieee_802_11i_test_vectors() -> None:
    assert derive_psk("IEEE", "password", "wifi.psk") == (
        "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e"
    )
    assert derive_psk("ThisIsASSID", "ThisIsAPassword", "wifi.psk") == (
        "0dc0d6eb90555ed6419756b9a15ec3e3209b63df707dd508d14581f8982721af"
    )
    given = "AB" * 32  # already the key: kept (lower-cased), not derived again
    assert derive_psk("IEEE", given, "wifi.psk") == given.lower()


@pytest.mark.parametrize(
    "passphrase", ["short", "x" * 64, "tab\there!", "naïve-passphrase", "ab" * 31 + "zz"]
)
def test_bad_passphrases_are_refused_without_being_shown(passphrase: str) -> None:
    with pytest.raises(ProvisioningError, match="8 to 63 printable ASCII") as caught:
        derive_psk("field-net", passphrase, "wifi.psk")
    assert passphrase not in str(caught.value)


@pytest.mark.parametrize(
    ("ssid", "problem"),
    [
        ("", "must not be empty"),
        ("x" * 33, "33 bytes in UTF-8; an SSID has at most 32"),
        ("é" * 17, "34 bytes"),  # 17 characters, 34 bytes
        ("field\nnet", "control characters"),
        ("field\x00", "control characters"),
        ("field\x7f", "control characters"),
        ("field\x85", "control characters"),
        (42, "expected a string"),
    ],
)
def test_bad_ssids(ssid: object, problem: str) -> None:
    with pytest.raises(ProvisioningError, match=problem):
        check_ssid(ssid, "wifi.ssid")


def test_good_ssids_and_countries() -> None:
    assert check_ssid("x" * 32, "s") == "x" * 32
    assert check_ssid(' "quoted" } network={ ', "s").startswith(" ")
    assert check_country("JP", "c") == "JP"
    for bad in ("jp", "JPN", "", 81):
        with pytest.raises(ProvisioningError, match="two-letter country code"):
            check_country(bad, "wifi.country")


def test_config_writes_the_ssid_in_hex_and_only_the_derived_key() -> None:
    ssid = 'lab" }\nnetwork={'  # hostile if it were quoted (never accepted by check_ssid, even so)
    psk = derive_psk(ssid, "correct horse battery", "p")
    text = supplicant_config(WifiSettings(ssid, "env:X", "JP"), psk).decode()
    assert f"\tssid={ssid.encode().hex()}\n" in text and f"\tpsk={psk}\n" in text
    assert "correct horse" not in text and ssid not in text
    assert text.count("network={") == 1 and "country=JP\n" in text
    assert "country" not in supplicant_config(WifiSettings("a", "env:X"), psk).decode()
