"""Per-stream sequence numbers that never repeat, even across restarts and crashes.

Writing the counter on every record would cost a disk flush per record; instead blocks are reserved: the
file records, per stream, a number above every sequence handed out. After a crash numbers resume there, so
consumers see a gap (visible, harmless), never a repeat (which they must treat as a replay).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path


class SequenceCounter:
    def __init__(self, path: Path, block: int = 10_000) -> None:
        self.path = path
        self.block = block
        self._lock = threading.Lock()
        self._next: dict[str, int] = {}
        self._reserved: dict[str, int] = self._load()

    def _load(self) -> dict[str, int]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as error:
            raise RuntimeError(
                f"sequence file {self.path} is unreadable ({error}); refusing to reuse numbers"
            ) from None
        return {str(k): int(v) for k, v in data.items()}

    def next(self, stream: str) -> int:
        with self._lock:
            value = self._next.get(stream, self._reserved.get(stream, 1))
            if value >= self._reserved.get(stream, 1):
                self._reserved[stream] = value + self.block
                self._save()
            self._next[stream] = value + 1
            return value

    def _save(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        with temporary.open("w") as handle:
            json.dump(self._reserved, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.path)
