"""docs/embedding.md's example runs exactly as written: the documentation cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "embedding.md"


def test_the_embedding_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
    assert len(blocks) == 1
    exec(compile(blocks[0], str(DOC), "exec"), {"__name__": "embedding_example"})


def test_the_model_file_example_is_valid(tmp_path: Path) -> None:
    from agent.core.model import Model, ResourceKind, ValueMode
    from agent.core.model.declaration import load_model_file

    text = re.findall(r"```toml\n(.*?)```", (DOC.parent / "model-file.md").read_text(), re.DOTALL)[0]
    (tmp_path / "model.toml").write_text(text)
    model = Model()
    load_model_file(model, tmp_path / "model.toml")
    assert model.get("depot", "info", "operator").mode is ValueMode.FIXED
    move = model.get("depot", "gate", "move")
    assert move.kind is ResourceKind.ACTION and [p.name for p in move.parameters] == ["open", "speed"]
    assert model.get("truck", "admin", "location").mode is ValueMode.UPDATABLE
    assert model.get("depot", "gate", "temperature").metadata["sensor"] == "DS18B20"


def test_the_configuration_example_is_valid(tmp_path: Path) -> None:
    from agent.app import extensions
    from agent.core.config import load_config

    text = re.findall(r"```toml\n(.*?)```", (DOC.parent / "configuration.md").read_text(), re.DOTALL)[0]
    (tmp_path / "agent.toml").write_text(text)
    config = load_config(tmp_path / "agent.toml", extensions())
    assert config.agent.device_id == "truck-042" and config.drivers[0].type == "simulated"
