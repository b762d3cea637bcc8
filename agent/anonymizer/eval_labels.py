"""Read and check the labeled privacy evaluation set (eval/labels.json; schema in eval/README.md).

Every problem is reported with its JSON path, all at once, so a bad edit of the labels is fixed in one go
instead of surfacing as a wrong recall. File names must stay inside the set's folder.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .evaluation import CLASSES, SUBCLASSES, Instance

SCHEMA = "msec-privacy-eval/1"
MAX_LABELS_BYTES = 16 * 2**20
MAX_SIDE = 16384


class LabelsError(ValueError):
    """The labels file cannot be used; ``problems`` lists each one with its JSON path."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        super().__init__(f"{source}: {len(problems)} problem(s): " + "; ".join(problems[:5]))


@dataclass(frozen=True)
class LabeledImage:
    file: Path
    width: int
    height: int
    instances: tuple[Instance, ...]
    source: dict[str, Any]


@dataclass(frozen=True)
class LabeledVideo:
    file: Path
    width: int
    height: int
    first_frame: int
    frames: tuple[tuple[Instance, ...], ...]  # one entry per frame of the file, in order
    source: dict[str, Any]


@dataclass(frozen=True)
class EvaluationSet:
    images: tuple[LabeledImage, ...]
    video: LabeledVideo | None


class _Checker:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def integer(self, value: Any, path: str, low: int, high: int) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(path, f"expected an integer in {low}..{high} (found {value!r:.40})")
            return None
        return value

    def file(self, value: Any, path: str) -> Path | None:
        if not isinstance(value, str) or not value or "\\" in value or "\x00" in value:
            self.fail(path, f"expected a relative file name (found {value!r:.60})")
            return None
        relative = PurePosixPath(value)
        if relative.is_absolute() or ".." in relative.parts:
            self.fail(path, f"must stay inside the set's folder (found {value!r:.60})")
            return None
        resolved = (self.root / relative).resolve()
        if not resolved.is_relative_to(self.root):
            self.fail(path, f"must stay inside the set's folder (found {value!r:.60})")
            return None
        if not resolved.is_file():
            self.fail(path, f"no such file {value!r:.60}")
            return None
        return resolved

    def instances(self, value: Any, path: str, width: int, height: int, video: bool) -> tuple[Instance, ...]:
        if not isinstance(value, list):
            self.fail(path, "expected a list of boxes")
            return ()
        out = []
        for i, item in enumerate(value):
            instance = self.instance(item, f"{path}[{i}]", width, height, video)
            if instance is not None:
                out.append(instance)
        if video:
            tracks = [i.track for i in out]
            if len(tracks) != len(set(tracks)):
                self.fail(path, "a track id appears twice in one frame")
        return tuple(out)

    def instance(self, item: Any, path: str, width: int, height: int, video: bool) -> Instance | None:
        if not isinstance(item, dict):
            self.fail(path, "expected an object with box and class")
            return None
        known = {"box", "class", "subclass", "ignore", "crowd", "track", "note"}
        for key in sorted(set(item) - known):
            self.fail(f"{path}.{key}", "unknown key")
        box = item.get("box")
        good_box = (
            isinstance(box, list)
            and len(box) == 4
            and all(not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v) for v in box)
        )
        if not good_box:
            self.fail(f"{path}.box", f"expected [x, y, w, h] numbers (found {box!r:.60})")
            return None
        x, y, w, h = box
        if w <= 0 or h <= 0:
            self.fail(f"{path}.box", f"width and height must be positive (found {box})")
            return None
        if x >= width or y >= height or x + w <= 0 or y + h <= 0:
            self.fail(f"{path}.box", f"lies outside the {width}x{height} frame (found {box})")
            return None
        cls = item.get("class")
        if cls not in CLASSES:
            self.fail(f"{path}.class", f"expected one of {', '.join(CLASSES)} (found {cls!r:.40})")
            return None
        subclass = item.get("subclass")
        if subclass is not None and (cls != "vehicle" or subclass not in SUBCLASSES):
            self.fail(f"{path}.subclass", f"expected a vehicle with one of {', '.join(SUBCLASSES)}")
            return None
        flags = {}
        for flag in ("ignore", "crowd"):
            flags[flag] = item.get(flag, False)
            if not isinstance(flags[flag], bool):
                self.fail(f"{path}.{flag}", "expected true or false")
                return None
        track = item.get("track")
        if video:
            track = self.integer(track, f"{path}.track", 0, 1_000_000)
            if track is None:
                return None
        elif track is not None:
            self.fail(f"{path}.track", "track ids belong to video frames only")
            return None
        return Instance((x, y, w, h), cls, flags["ignore"], flags["crowd"], subclass=subclass, track=track)

    def frame_size(self, entry: dict[str, Any], path: str) -> tuple[int, int] | None:
        width = self.integer(entry.get("width"), f"{path}.width", 1, MAX_SIDE)
        height = self.integer(entry.get("height"), f"{path}.height", 1, MAX_SIDE)
        return None if width is None or height is None else (width, height)

    def source(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict) or not all(
            isinstance(value.get(k), str) and value.get(k) for k in ("package", "version", "path")
        ):
            self.fail(path, "expected package, version and path of the original")
            return {}
        return value


def load_labels(path: Path) -> EvaluationSet:
    """Read ``path`` (files it names are relative to its folder); raise LabelsError listing every problem."""
    source = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_LABELS_BYTES:
            raise LabelsError(source, [f"larger than {MAX_LABELS_BYTES} bytes ({size})"])
        document = json.loads(path.read_bytes())
    except OSError as error:
        raise LabelsError(source, [f"cannot read: {error.strerror or error}"]) from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise LabelsError(source, [f"not valid JSON: {error}"]) from None
    return parse_labels(document, path.parent, source)


def parse_labels(document: Any, root: Path, source: str = "labels") -> EvaluationSet:
    """Check a parsed labels document whose files are relative to ``root``."""
    check = _Checker(root)
    if not isinstance(document, dict):
        raise LabelsError(source, ["expected a JSON object"])
    if document.get("schema") != SCHEMA:
        check.fail("schema", f"expected {SCHEMA!r} (found {document.get('schema')!r:.40})")
    images = _images(check, document.get("images"))
    video = _video(check, document.get("video")) if document.get("video") is not None else None
    if check.problems:
        raise LabelsError(source, check.problems)
    return EvaluationSet(images, video)


def _images(check: _Checker, entries: Any) -> tuple[LabeledImage, ...]:
    if not isinstance(entries, list) or not entries:
        check.fail("images", "expected a non-empty list")
        return ()
    out, seen = [], set()
    for i, entry in enumerate(entries):
        path = f"images[{i}]"
        if not isinstance(entry, dict):
            check.fail(path, "expected an object")
            continue
        file = check.file(entry.get("file"), f"{path}.file")
        if file is not None and file in seen:
            check.fail(f"{path}.file", "listed twice")
        size = check.frame_size(entry, path)
        src = check.source(entry.get("source"), f"{path}.source")
        if file is None or size is None:
            continue
        seen.add(file)
        instances = check.instances(entry.get("boxes"), f"{path}.boxes", *size, video=False)
        out.append(LabeledImage(file, size[0], size[1], instances, src))
    return tuple(out)


def _video(check: _Checker, entry: Any) -> LabeledVideo | None:
    if not isinstance(entry, dict):
        check.fail("video", "expected an object")
        return None
    file = check.file(entry.get("file"), "video.file")
    size = check.frame_size(entry, "video")
    src = check.source(entry.get("source"), "video.source")
    first = check.integer(entry.get("first_frame"), "video.first_frame", 0, 10_000_000)
    frames_in = entry.get("frames")
    if not isinstance(frames_in, list) or not frames_in:
        check.fail("video.frames", "expected a non-empty list")
        return None
    if file is None or size is None or first is None:
        return None
    frames = []
    for i, frame in enumerate(frames_in):
        path = f"video.frames[{i}]"
        if not isinstance(frame, dict):
            check.fail(path, "expected an object")
            continue
        if frame.get("index") != first + i:
            check.fail(f"{path}.index", f"expected {first + i}: one entry per frame, in order")
        if not isinstance(frame.get("keyframe", False), bool):
            check.fail(f"{path}.keyframe", "expected true or false")
        frames.append(check.instances(frame.get("boxes"), f"{path}.boxes", *size, video=True))
    return LabeledVideo(file, size[0], size[1], first, tuple(frames), src)
