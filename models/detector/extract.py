"""Slice the OIDv4 SSD-MobileNetV2 and its label map out of `@mediapipe/objectron`'s packed asset file.

The npm package ships its models for the browser as one Emscripten "packed assets" blob; the byte ranges of
each file are in the loader script's `loadPackage({"files": [...]})` call. We read the ranges from there
(rather than trusting numbers written down once) and then check the result against the SHA-256 recorded
when the model was first extracted: a different package would silently give us a different model.

Standard library only, so it runs before any tool venv exists:
    python3 extract.py <unpacked npm package dir> <output dir>
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

PACKED = "objectron_solution_packed_assets.data"
LOADER = "objectron_solution_packed_assets_loader.js"
# packed-asset name -> (committed name, expected SHA-256 of the slice)
WANTED = {
    "/object_detection_oidv4_labelmap.txt": (
        "oidv4_labelmap.txt",
        "c148336a65f673013609a923fdcbdeec0f49df935045029c3746a3828a0e80e0",
    ),
    "/third_party/mediapipe/modules/objectron/object_detection_ssd_mobilenetv2_oidv4_fp16.tflite": (
        "ssd_mobilenetv2_oidv4_fp16.tflite",
        "d0a5255bf8c4f5a0bc4240741a76c41d5e939f7655078f945f50ab53a9375da6",
    ),
}
TFLITE_MAGIC = b"TFL3"


class ExtractError(Exception):
    pass


def file_table(loader_js: str) -> list[dict[str, object]]:
    """The `files` list of the loader's `loadPackage({...})` call."""
    match = re.search(r'loadPackage\((\{"files":.*?\]\s*,.*?\})\)', loader_js, re.S)
    if match is None:
        raise ExtractError(f"{LOADER}: no loadPackage({{files: ...}}) call found")
    try:
        table = json.loads(match.group(1))["files"]
    except (ValueError, KeyError) as exc:
        raise ExtractError(f"{LOADER}: loadPackage argument is not the expected JSON ({exc})") from None
    return table


def extract(package: Path, output: Path, *, check_hashes: bool = True) -> dict[str, dict[str, object]]:
    blob = (package / PACKED).read_bytes()
    table = {entry["filename"]: entry for entry in file_table((package / LOADER).read_text())}
    output.mkdir(parents=True, exist_ok=True)
    report: dict[str, dict[str, object]] = {}
    for packed_name, (name, expected) in WANTED.items():
        if packed_name not in table:
            raise ExtractError(f"{PACKED}: {packed_name} is not in the loader's file table")
        start, end = int(table[packed_name]["start"]), int(table[packed_name]["end"])
        if not 0 <= start < end <= len(blob):
            raise ExtractError(f"{packed_name}: byte range {start}..{end} outside the {len(blob)}-byte blob")
        data = blob[start:end]
        if name.endswith(".tflite") and data[4:8] != TFLITE_MAGIC:
            raise ExtractError(f"{packed_name}: bytes {start}..{end} are not a TFLite flatbuffer")
        digest = hashlib.sha256(data).hexdigest()
        if check_hashes and digest != expected:
            raise ExtractError(f"{name}: SHA-256 {digest} is not the recorded {expected}")
        (output / name).write_bytes(data)
        report[name] = {
            "packed_name": packed_name,
            "start": start,
            "end": end,
            "size": len(data),
            "md5": hashlib.md5(data).hexdigest(),
            "sha256": digest,
        }
    return report


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        report = extract(Path(argv[1]), Path(argv[2]))
    except (ExtractError, OSError) as exc:
        print(f"extract: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
