"""The fleet inventory, `devices.json`: one entry per device id, written atomically under a lock.

An entry: id, host, key fingerprint (SHA-256 of the identity public key), image/agent version, status
(`provisioning` while a run is under way or was interrupted, `provisioned`, `revoked`), the last step done,
and times. The identity public key and certificate sit next to it, in `devices/<id>/`.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import ProvisioningError

PROVISIONING, PROVISIONED, REVOKED = "provisioning", "provisioned", "revoked"


def now_text() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Inventory:
    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # several operators' runs may share one inventory
            yield

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        try:
            document = json.loads(text)
        except json.JSONDecodeError as error:
            raise ProvisioningError(
                f"{self.path}: not valid JSON ({error.msg} at line {error.lineno})",
                "restore it from your backup or version control; nothing was changed",
            ) from None
        devices = document.get("devices") if isinstance(document, dict) else None
        if not isinstance(devices, list) or not all(
            isinstance(d, dict) and isinstance(d.get("id"), str) for d in devices
        ):
            raise ProvisioningError(f'{self.path}: expected {{"devices": [{{"id": ...}}, ...]}}')
        return {d["id"]: d for d in devices}

    def _write(self, entries: dict[str, dict[str, Any]]) -> None:
        document = {"devices": [entries[k] for k in sorted(entries)]}
        descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".devices-")
        with os.fdopen(descriptor, "w") as out:
            json.dump(document, out, indent=2)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.path)

    def all(self) -> dict[str, dict[str, Any]]:
        with self._locked():
            return self._read()

    def get(self, device_id: str) -> dict[str, Any] | None:
        return self.all().get(device_id)

    def update(self, device_id: str, **fields: Any) -> dict[str, Any]:
        with self._locked():
            entries = self._read()
            entry = entries.setdefault(device_id, {"id": device_id, "created": now_text()})
            entry.update(fields, updated=now_text())
            self._write(entries)
            return dict(entry)

    def owner_of_key(self, fingerprint: str) -> str | None:
        """The device id (not revoked) that already holds this identity key."""
        for entry in self.all().values():
            if entry.get("key_fingerprint") == fingerprint and entry.get("status") != REVOKED:
                return str(entry["id"])
        return None
