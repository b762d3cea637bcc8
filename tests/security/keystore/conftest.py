"""Fixtures: a real swtpm per test (fresh state), behind tpm2-abrmd on one private session bus."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .swtpm import SessionBus, Swtpm, missing_tools

os.environ.setdefault("TSS2_LOG", "all+none")  # libtss2 logs caught TPM errors to stderr otherwise


@pytest.fixture(scope="session")
def session_bus(tmp_path_factory: pytest.TempPathFactory) -> SessionBus:
    missing = missing_tools()
    if missing:
        pytest.skip(f"TPM tests need {', '.join(missing)} (apt-get install swtpm tpm2-abrmd dbus)")
    pytest.importorskip("tpm2_pytss")
    return SessionBus.shared(tmp_path_factory.mktemp("dbus"))  # stopped at exit


@pytest.fixture
def swtpm(session_bus: SessionBus, tmp_path: Path) -> Iterator[Swtpm]:
    simulator = Swtpm(tmp_path / "tpm-state", session_bus).start()
    yield simulator
    simulator.stop()
