"""Southbound drivers. Each folder is one integration; DRIVERS maps config `type` to its plugin."""

from .base import DriverPlugin
from .simulated import PLUGIN as SIMULATED

DRIVERS: dict[str, DriverPlugin] = {plugin.type: plugin for plugin in (SIMULATED,)}

__all__ = ["DRIVERS", "DriverPlugin"]
