"""The runtime: supervised components on one asyncio loop, with systemd notification."""

from .component import Component, Health, State
from .runtime import Runtime
from .sdnotify import Notifier
from .supervisor import Backoff, Supervisor

__all__ = ["Backoff", "Component", "Health", "Notifier", "Runtime", "State", "Supervisor"]
