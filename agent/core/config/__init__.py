"""Configuration: one TOML file, validated before anything starts.

Names are loaded lazily (PEP 562): the model's declaration schema imports config building blocks, and
the loader imports the declaration schema, so an eager import here would be a cycle.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DEFAULT_CONFIG_PATH": "loader",
    "AgentConfig": "loader",
    "Extensions": "loader",
    "load_config": "loader",
    "ConfigError": "errors",
    "Problem": "errors",
    "DriverConfig": "schema",
    "Secret": "agent.security.secrets",
    "SecretError": "agent.security.secrets",
    "SecretRef": "agent.security.secrets",
    "resolve_secret": "agent.security.secrets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = _EXPORTS[name]
    # Secret references live with security (the bottom layer) so its own tables can use them too.
    target = module if module.startswith("agent.") else f"{__name__}.{module}"
    return getattr(importlib.import_module(target), name)
