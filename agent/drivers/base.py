"""What a driver package provides: its config table and a factory for its component."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..core.config import DriverConfig
from ..core.model import Model
from ..core.runtime import Component


@dataclass(frozen=True)
class DriverPlugin:
    type: str  # the `type` of its [[drivers]] table
    config: type[DriverConfig]
    create: Callable[[DriverConfig, Model], Component]
    summary: str = ""
