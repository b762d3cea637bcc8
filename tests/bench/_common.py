"""Shared helper of the benchmarks: write a result as JSON, with enough context to compare runs."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def write_result(name: str, result: dict[str, Any]) -> Path:
    """Write ``result`` to $BENCH_OUT (default out/bench)/<name>.json and return the path."""
    out_dir = Path(os.environ.get("BENCH_OUT", "out/bench"))
    out_dir.mkdir(parents=True, exist_ok=True)
    document = {
        "name": name,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "result": result,
    }
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    return path
