"""Southbound drivers. Each folder is one integration; DRIVERS maps config `type` to its plugin."""

from .base import DriverPlugin
from .ble import PLUGIN as BLE
from .camera import PLUGIN as CAMERA
from .gpio import PLUGIN as GPIO
from .serial import PLUGIN as SERIAL
from .simulated import PLUGIN as SIMULATED

DRIVERS: dict[str, DriverPlugin] = {plugin.type: plugin for plugin in (SIMULATED, SERIAL, GPIO, BLE, CAMERA)}

__all__ = ["DRIVERS", "DriverPlugin"]
