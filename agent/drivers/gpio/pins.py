"""Choosing gpiozero's pin factory by configuration, as gpiozero itself lets a program do."""

from __future__ import annotations

from typing import Any


def make_factory(name: str) -> Any:
    """'mock': gpiozero's MockFactory, simulated pins tests drive with drive_high()/drive_low();
    'default': what gpiozero picks on this board (lgpio, RPi.GPIO, pigpio, native), or BadPinFactory."""
    if name == "mock":
        from gpiozero.pins.mock import MockFactory

        return MockFactory()
    from gpiozero import Device

    return Device._default_pin_factory()
