"""Loading agent.toml: parse, validate every table, and report every problem at once.

The core knows its own tables. Drivers and northbounds register theirs through `Extensions`, so the core
never imports them (the dependency rules in docs/architecture.md) and a typo in any table is still caught.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..model.declaration import ModelDecl, read_model_file
from .documents import parse_document, read_document
from .errors import ConfigError, Problem, problems_from, shorten
from .schema import AgentSection, DriverConfig, HttpSection, ModelSection, OutboxSection, RuntimeSection

MAX_CONFIG_BYTES = 1 * 2**20
DEFAULT_CONFIG_PATH = Path("/etc/msec-agent/agent.toml")

CORE_SECTIONS: dict[str, type[BaseModel]] = {
    "agent": AgentSection,
    "model": ModelSection,
    "outbox": OutboxSection,
    "http": HttpSection,
    "runtime": RuntimeSection,
}


@dataclass(frozen=True)
class Extensions:
    """Tables contributed by plugins: `sections` by name, driver tables by their `type`."""

    sections: Mapping[str, type[BaseModel]] = field(default_factory=dict)
    drivers: Mapping[str, type[DriverConfig]] = field(default_factory=dict)


@dataclass(frozen=True)
class AgentConfig:
    source: Path
    agent: AgentSection
    model: ModelSection
    outbox: OutboxSection
    http: HttpSection
    runtime: RuntimeSection
    drivers: tuple[DriverConfig, ...] = ()
    sections: Mapping[str, BaseModel] = field(default_factory=dict)
    model_files: tuple[tuple[Path, ModelDecl], ...] = ()

    @property
    def state_dir(self) -> Path:
        return Path(self.agent.state_dir)

    @property
    def outbox_path(self) -> Path:
        return self.state_dir / self.outbox.path

    def section(self, name: str) -> BaseModel | None:
        return self.sections.get(name)


def load_config(
    path: str | Path,
    extensions: Extensions | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> AgentConfig:
    """Reads and validates a config file; raises ConfigError listing every problem found.

    `overrides` replaces keys of tables after parsing (the CLI's --state-dir), so they are validated too."""
    path = Path(path)
    source = str(path)
    data = read_document(path, MAX_CONFIG_BYTES)
    raw = parse_document(source, data, ".toml")
    for table, values in (overrides or {}).items():
        if isinstance(raw.get(table, {}), dict):
            raw[table] = {**raw.get(table, {}), **values}
    return validate_config(raw, path, extensions or Extensions())


def validate_config(raw: dict[str, Any], path: Path, extensions: Extensions) -> AgentConfig:
    problems: list[Problem] = []
    schemas = {**CORE_SECTIONS, **extensions.sections}
    for key in raw:
        if key not in schemas and key != "drivers":
            problems.append(
                Problem(key, f"unknown table (expected one of: {', '.join([*schemas, 'drivers'])})")
            )
    if "agent" not in raw:
        problems.append(Problem("agent", "required table is missing (it holds device_id)"))

    sections: dict[str, BaseModel] = {}
    for name, schema in schemas.items():
        if name not in raw and (name == "agent" or name not in CORE_SECTIONS):
            continue  # a plugin's table is absent when its feature is off
        value = raw.get(name, {})
        if not isinstance(value, dict):
            # The value is not shown: it may be a secret meant to go inside the table.
            problems.append(Problem(name, "expected a table"))
            continue
        try:
            sections[name] = schema.model_validate(value)
        except ValidationError as error:
            problems.extend(problems_from(error, name))

    drivers = _validate_drivers(raw.get("drivers", []), extensions, problems)
    model_files = _read_model_files(sections.get("model"), path, problems)
    if problems:
        raise ConfigError(str(path), problems)
    core = {name: sections.pop(name) for name in CORE_SECTIONS}
    return AgentConfig(source=path, drivers=drivers, sections=sections, model_files=model_files, **core)


def _validate_drivers(
    entries: Any, extensions: Extensions, problems: list[Problem]
) -> tuple[DriverConfig, ...]:
    if not isinstance(entries, list):
        problems.append(Problem("drivers", "expected an array of tables ([[drivers]])", shorten(entries)))
        return ()
    drivers: list[DriverConfig] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        where = f"drivers[{index}]"
        if not isinstance(entry, dict):
            problems.append(Problem(where, "expected a table", shorten(entry)))
            continue
        kind = entry.get("type")
        schema = extensions.drivers.get(kind) if isinstance(kind, str) else None
        if schema is None:
            known = ", ".join(sorted(extensions.drivers)) or "none installed"
            what = "unknown driver type" if "type" in entry else "required key is missing"
            problems.append(
                Problem(
                    f"{where}.type",
                    f"{what} (expected one of: {known})",
                    shorten(kind) if kind is not None else None,
                )
            )
            continue
        try:
            driver = schema.model_validate(entry)
        except ValidationError as error:
            problems.extend(problems_from(error, where))
            continue
        if driver.id in seen:
            problems.append(Problem(f"{where}.id", "duplicate driver id", shorten(driver.id)))
        seen.add(driver.id)
        drivers.append(driver)
    return tuple(drivers)


def _read_model_files(
    section: BaseModel | None, config_path: Path, problems: list[Problem]
) -> tuple[tuple[Path, ModelDecl], ...]:
    if not isinstance(section, ModelSection):
        return ()
    declarations = []
    for index, name in enumerate(section.files):
        file = Path(name) if Path(name).is_absolute() else config_path.parent / name
        try:
            declarations.append((file, read_model_file(file)))
        except ConfigError as error:
            for problem in error.problems:
                inner = f" at {problem.path}" if problem.path else ""
                problems.append(
                    Problem(f"model.files[{index}]", f"{file}{inner}: {problem.message}", problem.value)
                )
    return tuple(declarations)
