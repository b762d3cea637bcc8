"""Tests of the operator's provisioning tool. It is not an installed package: like `provisioning/provision`
does, put its folder on the import path."""

import sys
from pathlib import Path

_TOOL = str(Path(__file__).resolve().parents[2] / "provisioning")
if _TOOL not in sys.path:
    sys.path.insert(0, _TOOL)
