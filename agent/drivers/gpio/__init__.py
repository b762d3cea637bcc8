"""GPIO (gpiozero): debounced switches, pulse counters and outputs, on a configurable pin factory."""

from ..base import DriverPlugin
from .config import CounterConfig, GpioConfig, InputConfig, OutputConfig
from .driver import GpioDriver

PLUGIN = DriverPlugin(
    "gpio",
    GpioConfig,
    GpioDriver,  # type: ignore[arg-type]
    "GPIO pins: switches, pulse counters, LEDs and relays (gpiozero; 'mock' pin factory for tests)",
)

__all__ = ["PLUGIN", "CounterConfig", "GpioConfig", "GpioDriver", "InputConfig", "OutputConfig"]
