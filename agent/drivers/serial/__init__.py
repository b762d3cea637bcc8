"""Serial sensors (pyserial): NMEA 0183 GPS, Plantower PMS5003, and generic JSON / key=value lines."""

from ..base import DriverPlugin
from .config import FieldMap, SerialConfig
from .driver import SerialDriver

PLUGIN = DriverPlugin(
    "serial",
    SerialConfig,
    SerialDriver,  # type: ignore[arg-type]
    "a serial sensor: NMEA GPS, PMS5003 particulates, or JSON / key=value lines",
)

__all__ = ["PLUGIN", "FieldMap", "SerialConfig", "SerialDriver"]
