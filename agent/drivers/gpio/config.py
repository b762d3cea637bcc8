"""The `[[drivers]]` table of GPIO: inputs (switches), pulse counters and outputs, on a pin factory."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from ...core.config import DriverConfig
from ...core.config.schema_base import Name, Strict

# A BCM number, or a name gpiozero understands ('GPIO17', 'BOARD11', 'J8:11').
Pin = Annotated[int, Field(ge=0, le=63)] | Annotated[str, Field(pattern=r"^[A-Za-z0-9:]{1,16}$")]
Bounce = Annotated[float, Field(ge=0, le=5, allow_inf_nan=False)]


class InputConfig(Strict):
    """A switch (a lid, a door): a boolean STATE_VARIABLE `<service>/<resource>`, true while active."""

    service: Name
    resource: Name = "active"
    pin: Pin
    # True: an internal pull-up, active when the switch pulls the pin low (a switch to ground).
    pull_up: bool = True
    bounce: Bounce = 0.05  # seconds a new level must hold before it is reported


class CounterConfig(Strict):
    """A pulse counter (a tipping-bucket rain gauge): `<service>/pulses` and `<service>/total`."""

    service: Name
    pin: Pin
    pull_up: bool = True
    bounce: Bounce = 0.02  # pulses closer than this to the last one are contact bounce
    per_pulse: float = Field(default=1.0, gt=0, allow_inf_nan=False)  # 0.2794 mm for a common gauge
    unit: str | None = Field(default=None, max_length=32)


class OutputConfig(Strict):
    """An LED or relay: settable `<service>/state` and ACTIONs turn_on, turn_off, toggle, blink."""

    service: Name
    pin: Pin
    active_high: bool = True
    initial: bool = False


class GpioConfig(DriverConfig):
    type: Literal["gpio"]
    provider: Name = "truck"
    # mock: gpiozero's MockFactory (tests, demo, a laptop); default: the board's own (lgpio, RPi.GPIO...).
    pin_factory: Literal["mock", "default"] = "default"
    inputs: list[InputConfig] = Field(default=[], max_length=64)
    counters: list[CounterConfig] = Field(default=[], max_length=64)
    outputs: list[OutputConfig] = Field(default=[], max_length=64)

    @model_validator(mode="after")
    def _one_use_per_pin_and_service(self) -> GpioConfig:
        devices = [*self.inputs, *self.counters, *self.outputs]
        pins = [str(d.pin) for d in devices]
        services = [(d.service, getattr(d, "resource", "")) for d in devices]
        for what, names in (("pin", pins), ("service", services)):
            duplicates = sorted({str(n) for n in names if names.count(n) > 1})
            if duplicates:
                raise ValueError(f"{what} used twice: {', '.join(duplicates)}")
        if not devices:
            raise ValueError("no inputs, counters or outputs configured")
        return self
