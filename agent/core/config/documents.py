"""Reading configuration documents (agent.toml, model files): bounded, decoded, parsed, or a ConfigError."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

from .errors import ConfigError, Problem, shorten


def read_document(path: Path, limit: int) -> bytes:
    """Reads at most one byte past `limit`: `config check /dev/zero` must not fill the memory."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise ConfigError(str(path), [Problem("", f"cannot read: {error.strerror}")]) from None
    if len(data) > limit:
        raise ConfigError(str(path), [Problem("", f"larger than {limit} bytes")])
    return data


def parse_document(source: str, data: bytes, suffix: str) -> dict[str, Any]:
    """Parses TOML or JSON bytes into a table, turning syntax errors into ConfigError."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ConfigError(source, [Problem("", f"not UTF-8 text (byte {error.start})")]) from None
    try:
        raw = tomllib.loads(text) if suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, ValueError, RecursionError) as error:
        raise ConfigError(source, [Problem("", f"syntax error: {shorten(str(error), 200)}")]) from None
    if not isinstance(raw, dict):
        raise ConfigError(source, [Problem("", "expected a table at the top level")])
    return raw
