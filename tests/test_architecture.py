"""The dependency rules of docs/architecture.md, checked by reading every module's imports."""

from __future__ import annotations

import ast
import gc
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "agent"


def parse(path: Path) -> ast.Module:
    # CPython 3.11 aborts an AST construction ("recursion depth mismatch") when the garbage collector runs
    # a finalizer that raises in the middle of it — e.g. a slixmpp stream left by an earlier test whose
    # event loop is closed. Collect first, and keep the collector out of the parse.
    gc.disable()
    try:
        return ast.parse(path.read_text())
    finally:
        gc.enable()


@pytest.fixture(autouse=True, scope="module")
def _collect_garbage_first() -> None:
    gc.collect()


def imports_of(path: Path) -> set[str]:
    """Absolute names of everything a module imports (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            names.add(module)
            names.update(f"{module}.{alias.name}" for alias in node.names)
    return names


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


FORBIDDEN = {
    # The core knows nothing above it: no driver, no northbound, no web framework.
    "core": (
        "agent.drivers",
        "agent.anonymizer",
        "agent.web",
        "agent.app",
        "agent.cli",
        "flask",
        "werkzeug",
        "cheroot",
    ),
    # Drivers feed the model; they never talk to a northbound.
    # Drivers never call the anonymizer: the app hands a camera's frames to it (set_consumer).
    "drivers": ("agent.anonymizer", "agent.web", "agent.app", "agent.cli", "flask", "cheroot"),
    # The anonymizer sits beside the drivers: it uses the core and security, serves no one directly.
    "anonymizer": (
        "agent.drivers",
        "agent.northbound",
        "agent.web",
        "agent.app",
        "agent.cli",
        "flask",
        "werkzeug",
        "cheroot",
    ),
    # Northbounds read the model; they never reach into a driver.
    "web": ("agent.drivers", "agent.app", "agent.cli"),
    "northbound": ("agent.drivers", "agent.app", "agent.cli"),
    # Security sits at the bottom: everything may import it, it imports nothing of the agent.
    "security": ("agent.core", "agent.drivers", "agent.web", "agent.northbound", "agent.app", "agent.cli"),
}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_only_downwards(layer: str) -> None:
    files = modules(layer)
    assert files, f"no modules found in agent/{layer}"
    violations = [
        f"{path.relative_to(ROOT.parent)} imports {name}"
        for path in files
        for name in sorted(imports_of(path))
        if any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN[layer])
    ]
    assert violations == []


def test_only_the_cli_starts_demo_services() -> None:
    importers = [
        str(path.relative_to(ROOT.parent))
        for path in sorted(ROOT.rglob("*.py"))
        if not path.is_relative_to(ROOT / "demo")
        and any(name == "agent.demo" or name.startswith("agent.demo.") for name in imports_of(path))
    ]
    assert importers == ["agent/cli.py"]


def test_the_checker_sees_relative_imports() -> None:
    names = imports_of(ROOT / "app.py")
    assert "agent.drivers" in names and "agent.core.model" in names
