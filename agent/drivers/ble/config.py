"""The `[[drivers]]` table of type "ble": BTHome sensors heard by scanning, GATT sensors connected to.

A bind key is a secret: give it as a reference (`env:NAME`, `file:/path`, `tpm:NAME`) whose content is 32
hex digits. Inline hex is accepted for development and the demo; it is never shown in a repr, an error
message or a log line (a refused key is reported by reason only).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, TypeAdapter, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from ...core.config import DriverConfig
from ...core.config.schema_base import Name, PositiveFloat, Strict
from ...security.secrets import SecretRef

_ADDRESS = re.compile(r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
_HEX_KEY = re.compile(r"^[0-9A-Fa-f]{32}$")
_SECRET_REF: TypeAdapter[str] = TypeAdapter(SecretRef)


def _check_address(value: object) -> str:
    if not isinstance(value, str) or not _ADDRESS.fullmatch(value):
        raise PydanticCustomError("ble_address", "expected a Bluetooth address like 'A4:C1:38:00:00:01'")
    return value.upper()  # bleak reports upper case; configs may not


def _check_bind_key(value: object) -> str:
    # Before any type check, and with the redacted error type, so a mistyped key is never echoed back.
    if isinstance(value, str) and _HEX_KEY.fullmatch(value):
        return value.lower()
    try:
        return _SECRET_REF.validate_python(value)
    except ValidationError:
        raise PydanticCustomError(
            "secret_reference",
            "expected a BTHome bind key: 32 hex digits, or a secret reference ('env:NAME', 'file:/path', "
            "'tpm:NAME') to them",
        ) from None


Address = Annotated[str, BeforeValidator(_check_address)]
BindKey = Annotated[str, BeforeValidator(_check_bind_key)]


def is_reference(bind_key: str) -> bool:
    return not _HEX_KEY.fullmatch(bind_key)


class BTHomeDevice(Strict):
    address: Address
    provider: Name
    friendly_name: str | None = Field(default=None, max_length=128)
    bind_key: BindKey | None = Field(default=None, repr=False)


class GattDevice(Strict):
    address: Address
    provider: Name
    friendly_name: str | None = Field(default=None, max_length=128)
    connect_timeout: PositiveFloat = 20.0
    reconnect_initial: PositiveFloat = 1.0
    reconnect_max: PositiveFloat = 60.0


class Simulation(Strict):
    """The simulated radio: every configured sensor 'advertises' real BTHome frames (or sends real ESS
    notifications) every `interval` seconds, through the same parser as on the truck."""

    interval: float = Field(default=2.0, gt=0, le=3600, allow_inf_nan=False)
    seed: int | None = None


class BleConfig(DriverConfig):
    type: Literal["ble"]
    # bluez: the real adapter through bleak; simulated: no radio needed (laptops, CI, the demo).
    backend: Literal["bluez", "simulated"] = "bluez"
    adapter: str | None = Field(default=None, pattern=r"^hci[0-9]{1,2}$")
    # passive needs BlueZ's advertisement monitor (>= 5.56, kernel >= 5.10, often `--experimental`);
    # auto tries passive and falls back to active scanning, saying so in the component's health.
    scanning_mode: Literal["auto", "passive", "active"] = "auto"
    devices: list[BTHomeDevice] = Field(default=[], max_length=256)
    gatt: list[GattDevice] = Field(default=[], max_length=16)
    simulation: Simulation = Simulation()

    @model_validator(mode="after")
    def _unique(self) -> BleConfig:
        addresses = [d.address for d in self.devices] + [d.address for d in self.gatt]
        duplicate = next((a for a in addresses if addresses.count(a) > 1), None)
        if duplicate:
            raise ValueError(f"address {duplicate} is configured twice")
        return self
