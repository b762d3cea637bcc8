"""A simulated vehicle: environment sensors, a GPS on a loop through Fujisawa, and a beacon output."""

from .driver import PLUGIN, SimulatedConfig, SimulatedVehicle

__all__ = ["PLUGIN", "SimulatedConfig", "SimulatedVehicle"]
