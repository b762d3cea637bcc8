"""The tool runs on the operator's machine: of the agent it may import only the shared protocol code (the
SOX client and wire format, the consumer's record verifier), never the device's runtime or config."""

from __future__ import annotations

import ast
from pathlib import Path

import msec_provision

ALLOWED = {"agent.northbound.soxfire.session", "agent.northbound.soxfire.wire", "agent.security.verify"}


def agent_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "agent" or name.startswith("agent.")}


def test_only_shared_protocol_code_of_the_agent_is_imported() -> None:
    package = Path(msec_provision.__file__).parent
    used = {name for path in package.glob("*.py") for name in agent_imports(path)}
    assert used and used <= ALLOWED, used - ALLOWED
