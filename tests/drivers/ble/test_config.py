"""The ble driver's config table: addresses, bind keys (hex or references, never echoed), limits."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.core.config import ConfigError
from agent.core.config.loader import Extensions, validate_config
from agent.drivers.ble import BleConfig

KEY = "231d39c1d7cc1ab1aee224cd096db932"


def config(**overrides) -> BleConfig:
    return BleConfig.model_validate({"type": "ble", "id": "ble", **overrides})


def device(**overrides) -> dict:
    return {"address": "a4:c1:38:00:00:01", "provider": "cabin", **overrides}


def test_defaults_and_normalised_address() -> None:
    c = config(
        devices=[device(bind_key=KEY.upper())], gatt=[{"address": "A4:C1:38:00:00:02", "provider": "p"}]
    )
    assert (c.backend, c.scanning_mode) == ("bluez", "auto")
    assert c.devices[0].address == "A4:C1:38:00:00:01"
    assert c.devices[0].bind_key == KEY
    assert KEY not in repr(c) and KEY not in str(c.devices[0])


@pytest.mark.parametrize("ref", ["env:CABIN_KEY", "file:/etc/msec/cabin.key", "tpm:cabin"])
def test_bind_key_references(ref: str) -> None:
    assert config(devices=[device(bind_key=ref)]).devices[0].bind_key == ref


@pytest.mark.parametrize(
    "bad",
    [
        {"devices": [device(address="a4:c1:38:00:00")]},
        {"devices": [device(address=42)]},
        {"devices": [device(provider="a/b")]},
        {"devices": [device(), device()]},  # the same address twice
        {"adapter": "wlan0"},
        {"backend": "usb"},
        {"scanning_mode": "aggressive"},
        {"simulation": {"interval": 0}},
        {"gatt": [{"address": "A4:C1:38:00:00:02", "provider": "p", "reconnect_initial": -1}]},
        {"devices": [device(colour="red")]},
    ],
)
def test_rejects_garbage(bad: dict) -> None:
    with pytest.raises(ValidationError):
        config(**bad)


@pytest.mark.parametrize(
    "secret",
    [
        KEY[:-1] + "g",  # not hex
        KEY[:30],  # 15 bytes
        KEY + "00",  # 17 bytes
        "env:1BAD",  # not a variable name
        "file:relative/key",
        1234567890,  # a number
    ],
)
def test_bad_bind_keys_are_reported_without_their_value(secret: object) -> None:
    raw = {
        "agent": {"device_id": "t"},
        "drivers": [{"type": "ble", "id": "ble", "devices": [device(bind_key=secret)]}],
    }
    with pytest.raises(ConfigError) as caught:
        validate_config(raw, Path("/tmp/agent.toml"), Extensions(drivers={"ble": BleConfig}))
    (problem,) = caught.value.problems
    assert problem.path == "drivers[0].devices[0].bind_key"
    assert problem.value is None and "32 hex digits" in problem.message
    assert str(secret) not in str(caught.value)


def test_the_example_in_docs_ble_md_is_valid() -> None:
    import tomllib

    text = (Path(__file__).resolve().parents[3] / "docs" / "ble.md").read_text()
    example = text.split("```toml\n", 1)[1].split("```", 1)[0]
    raw = {"agent": {"device_id": "t"}, **tomllib.loads(example)}
    loaded = validate_config(raw, Path("/tmp/agent.toml"), Extensions(drivers={"ble": BleConfig}))
    (ble,) = loaded.drivers
    assert [d.provider for d in ble.devices] == ["cabin", "bin-07"] and ble.gatt[0].provider == "hopper"
