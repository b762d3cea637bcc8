"""Fixtures of the anonymizer tests: a signed models folder (throw-away key) and its config section."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.anonymizer import AnonymizerSection

from .kit import make_models_dir, section


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return make_models_dir(tmp_path)


@pytest.fixture
def anonymizer_section(models_dir: Path) -> AnonymizerSection:
    return section(models_dir)
