"""One booted `qemu` image for the whole module: booting under emulation takes a minute or more."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from .vm import OUT, Artifacts, Machine, partition_bytes

BOOT_TIMEOUT = 600  # seconds to an SSH login, on a busy 2-core machine under TCG


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    vm = Machine(Artifacts.find("qemu"), tmp_path_factory.mktemp("card"))
    vm.prepare()
    vm.boot()
    try:
        vm.wait_for_ssh(BOOT_TIMEOUT)
        yield vm
    finally:
        vm.shutdown()
        keep = OUT / "image-test-console.log"
        keep.write_text(vm.console())  # the serial console of the last run, for whoever reads a failure


@pytest.fixture(scope="module")
def timings() -> Iterator[dict[str, float]]:
    """Measurements the tests record; written to out/image-boot.json (numbers for the report, not asserts)."""
    measured: dict[str, float] = {}
    yield measured
    measured["recorded_at"] = time.time()
    Path(OUT / "image-boot.json").write_text(json.dumps(measured, indent=2) + "\n")


@pytest.fixture(scope="module")
def artifacts_root_bytes() -> int:
    """The root partition's size in the image as built (before the first boot grows it)."""
    return partition_bytes(Artifacts.find("qemu").image, 1)
