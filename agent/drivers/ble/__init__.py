"""Bluetooth LE: BTHome v2 sensors heard by passive scanning, ESS sensors over GATT (bleak on BlueZ)."""

from .config import BleConfig
from .driver import PLUGIN, BleDriver

__all__ = ["PLUGIN", "BleConfig", "BleDriver"]
