"""Configuration: one TOML file, validated before anything starts."""

from .errors import ConfigError, Problem
from .loader import DEFAULT_CONFIG_PATH, AgentConfig, Extensions, load_config
from .schema import DriverConfig
from .secrets import Secret, SecretError, SecretRef, resolve_secret

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "AgentConfig",
    "ConfigError",
    "DriverConfig",
    "Extensions",
    "Problem",
    "Secret",
    "SecretError",
    "SecretRef",
    "load_config",
    "resolve_secret",
]
