"""The `[[drivers]]` table of a serial sensor: port, framing, protocol and (for text lines) the mapping."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ...core.config import DriverConfig
from ...core.config.schema_base import Name, PositiveFloat, Strict


class FieldMap(Strict):
    """Where one key of a JSON or key=value line goes in the model, and what it must be."""

    service: Name
    resource: Name
    type: Literal["double", "int", "long", "boolean", "string"] = "double"
    unit: str | None = Field(default=None, max_length=32)
    # Readings outside these bounds are refused (reason `range`): a negative PM or a 200 °C cabin is a
    # broken sensor, not a reading.
    min: float | None = Field(default=None, allow_inf_nan=False)
    max: float | None = Field(default=None, allow_inf_nan=False)


class SerialConfig(DriverConfig):
    type: Literal["serial"]
    provider: Name = "truck"
    # /dev/ttyUSB0, /dev/serial/by-id/..., a symlink; absent when `simulate` makes the device.
    port: str | None = Field(default=None, min_length=1, max_length=256)
    # The demo (and a laptop without the sensor): a simulator inside the agent writes real frames of the
    # protocol into a pty, which this driver reads through pyserial like any serial port.
    simulate: bool = False
    simulate_rate: PositiveFloat = 1.0
    baudrate: int = Field(default=9600, ge=50, le=4_000_000)
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O", "M", "S"] = "N"
    stopbits: Literal[1, 2] = 1
    protocol: Literal["nmea", "pms5003", "lines"]
    # nmea: the service of fix details; pms5003: of the PM readings. Lines map each key to its own place.
    service: Name | None = None
    # nmea: also write the position to admin/location (declared UPDATABLE: a client cannot forge it).
    location: bool = True
    line_format: Literal["json", "kv"] = "json"  # lines: {"pm25": 3.1} or pm25=3.1,temp=20.5
    fields: dict[Name, FieldMap] = Field(default={}, max_length=128)
    max_line: int = Field(default=512, ge=16, le=65_536)  # longer lines are refused, not buffered
    reconnect_initial: PositiveFloat = 0.2
    reconnect_max: PositiveFloat = 10.0

    @model_validator(mode="after")
    def _lines_need_fields(self) -> SerialConfig:
        if self.port is None and not self.simulate:
            raise ValueError("a serial driver needs a port (or simulate = true)")
        if self.protocol == "lines" and not self.fields:
            raise ValueError("protocol 'lines' needs a [drivers.fields] mapping")
        for key, spec in self.fields.items():
            if spec.min is not None and spec.max is not None and spec.min > spec.max:
                raise ValueError(f"fields.{key}: min is above max")
        return self
