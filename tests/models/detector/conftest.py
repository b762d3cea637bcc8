"""The scripts in models/detector/ are build tools, not part of the agent package: import them by path."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
DETECTOR_DIR = REPO / "models" / "detector"
DATA = Path(__file__).resolve().parent / "data"

if str(DETECTOR_DIR) not in sys.path:
    sys.path.insert(0, str(DETECTOR_DIR))
