"""devices.json: atomic updates under a lock, a corrupt file refused (and left as it was)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from msec_provision.errors import ProvisioningError
from msec_provision.inventory import Inventory


def test_entries_are_created_updated_and_listed(tmp_path: Path) -> None:
    inventory = Inventory(tmp_path / "devices.json")
    assert inventory.get("truck-7") is None and inventory.all() == {}
    inventory.update("truck-7", status="provisioning", key_fingerprint="sha256:aa")
    entry = inventory.update("truck-7", status="provisioned")
    assert entry["status"] == "provisioned" and entry["key_fingerprint"] == "sha256:aa"
    assert entry["created"] <= entry["updated"]
    document = json.loads((tmp_path / "devices.json").read_text())
    assert [d["id"] for d in document["devices"]] == ["truck-7"]


def test_key_owner_ignores_revoked_devices(tmp_path: Path) -> None:
    inventory = Inventory(tmp_path / "devices.json")
    inventory.update("truck-7", key_fingerprint="sha256:aa", status="revoked")
    assert inventory.owner_of_key("sha256:aa") is None
    inventory.update("truck-8", key_fingerprint="sha256:aa", status="provisioned")
    assert inventory.owner_of_key("sha256:aa") == "truck-8"


@pytest.mark.parametrize("content", ["{", "[]", '{"devices": {}}', '{"devices": [{"name": 1}]}', "\x00"])
def test_a_corrupt_inventory_is_refused_and_kept(tmp_path: Path, content: str) -> None:
    path = tmp_path / "devices.json"
    path.write_text(content)
    inventory = Inventory(path)
    with pytest.raises(ProvisioningError, match=r"devices\.json"):
        inventory.update("truck-7", status="provisioning")
    assert path.read_text() == content


def test_concurrent_updates_lose_nothing(tmp_path: Path) -> None:
    inventory = Inventory(tmp_path / "devices.json")

    def work(number: int) -> None:
        for step in range(10):
            inventory.update(f"truck-{number}", step=step)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    entries = inventory.all()
    assert sorted(entries) == [f"truck-{n}" for n in range(6)]
    assert all(entry["step"] == 9 for entry in entries.values())
    assert not list(tmp_path.glob(".devices-*"))  # no temporary file left behind
