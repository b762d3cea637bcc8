"""The labels of the privacy evaluation set: the committed set is well-formed, and hostile or broken
label files are refused with every problem named by its JSON path."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from agent.anonymizer.eval_labels import MAX_LABELS_BYTES, LabelsError, load_labels, parse_labels

REPO = Path(__file__).resolve().parents[2]
LABELS = REPO / "eval" / "labels.json"


def test_the_committed_set_loads_and_has_what_the_issue_asks_for() -> None:
    evaluation_set = load_labels(LABELS)
    assert len(evaluation_set.images) >= 60
    negatives = [i for i in evaluation_set.images if not i.instances]
    assert len(negatives) >= 3  # images with nobody in them measure over-masking
    people = [b for i in evaluation_set.images for b in i.instances if b.cls == "person" and b.judged]
    vehicles = [b for i in evaluation_set.images for b in i.instances if b.cls == "vehicle" and b.judged]
    assert len(people) >= 300 and len(vehicles) >= 100
    video = evaluation_set.video
    assert video is not None and video.first_frame == 700 and len(video.frames) == 95
    tracks = {b.track for frame in video.frames for b in frame if b.cls == "person"}
    assert len(tracks) >= 8
    for image in evaluation_set.images:
        assert image.source["package"] and image.source["version"]


def test_the_evaluation_files_stay_small() -> None:
    total = sum(p.stat().st_size for p in (REPO / "eval").rglob("*") if p.is_file())
    assert total < 10_000_000


def minimal(tmp_path: Path) -> dict[str, Any]:
    """A valid one-image, two-frame labels document whose files exist under tmp_path."""
    (tmp_path / "images").mkdir(exist_ok=True)
    (tmp_path / "images/a.jpg").write_bytes(b"not decoded here")
    (tmp_path / "clip.mp4").write_bytes(b"not decoded here")
    source = {"package": "darknet", "version": "0.0.0+git20180914", "path": "/usr/share/darknet/data/a.jpg"}
    return {
        "schema": "msec-privacy-eval/1",
        "images": [
            {
                "file": "images/a.jpg",
                "source": source,
                "width": 100,
                "height": 80,
                "boxes": [
                    {"box": [10, 10, 20, 40], "class": "person"},
                    {"box": [50, 30, 40, 20], "class": "vehicle", "subclass": "car", "ignore": True},
                ],
            }
        ],
        "video": {
            "file": "clip.mp4",
            "source": source,
            "width": 100,
            "height": 80,
            "first_frame": 7,
            "frames": [
                {
                    "index": 7,
                    "keyframe": True,
                    "boxes": [{"box": [0, 0, 10, 30], "class": "person", "track": 1}],
                },
                {"index": 8, "boxes": []},
            ],
        },
    }


def problems_of(document: Any, root: Path) -> list[str]:
    with pytest.raises(LabelsError) as caught:
        parse_labels(document, root)
    return caught.value.problems


def test_a_minimal_document_parses(tmp_path: Path) -> None:
    parsed = parse_labels(minimal(tmp_path), tmp_path)
    (image,) = parsed.images
    assert image.instances[1].ignore and image.instances[1].subclass == "car"
    assert parsed.video is not None and parsed.video.frames[0][0].track == 1


def break_(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of document with the value at a dotted path (list indices as numbers) replaced."""
    broken = copy.deepcopy(document)
    *parents, last = path.split(".")
    node: Any = broken
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is DELETE:
        del node[int(last) if last.isdigit() else last]
    elif last.isdigit():
        node[int(last)] = value
    else:
        node[last] = value
    return broken


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("schema", "msec-privacy-eval/0", "schema: expected"),
        ("images", [], "images: expected a non-empty list"),
        ("images.0", "images/a.jpg", "images[0]: expected an object"),
        ("images.0.file", "../../etc/passwd", "must stay inside"),
        ("images.0.file", "/etc/passwd", "must stay inside"),
        ("images.0.file", "images\\a.jpg", "expected a relative file name"),
        ("images.0.file", "images/missing.jpg", "no such file"),
        ("images.0.file", 42, "expected a relative file name"),
        ("images.0.width", 0, "images[0].width: expected an integer"),
        ("images.0.height", True, "images[0].height: expected an integer"),
        ("images.0.width", 10**9, "images[0].width: expected an integer"),
        ("images.0.source", {"package": "x"}, "images[0].source: expected package, version and path"),
        ("images.0.boxes", {"box": [1, 2, 3, 4]}, "expected a list of boxes"),
        ("images.0.boxes.0.box", [1, 2, 3], "images[0].boxes[0].box: expected [x, y, w, h]"),
        ("images.0.boxes.0.box", [1, 2, "3", 4], "expected [x, y, w, h]"),
        ("images.0.boxes.0.box", [1, 2, float("nan"), 4], "expected [x, y, w, h]"),
        ("images.0.boxes.0.box", [1, 2, 0, 4], "width and height must be positive"),
        ("images.0.boxes.0.box", [100, 2, 5, 4], "lies outside the 100x80 frame"),
        ("images.0.boxes.0.box", [-10, -10, 10, 10], "lies outside"),
        ("images.0.boxes.0.class", "dog", "images[0].boxes[0].class: expected one of person, vehicle"),
        ("images.0.boxes.0.subclass", "car", "images[0].boxes[0].subclass: expected a vehicle"),
        ("images.0.boxes.1.subclass", "tank", "images[0].boxes[1].subclass"),
        ("images.0.boxes.0.ignore", "yes", "images[0].boxes[0].ignore: expected true or false"),
        ("images.0.boxes.0.track", 3, "track ids belong to video frames only"),
        ("images.0.boxes.0.colour", "red", "images[0].boxes[0].colour: unknown key"),
        ("video", [], "video: expected an object"),
        ("video.first_frame", -1, "video.first_frame: expected an integer"),
        ("video.frames", [], "video.frames: expected a non-empty list"),
        ("video.frames.1.index", 9, "video.frames[1].index: expected 8"),
        ("video.frames.0.keyframe", "yes", "video.frames[0].keyframe: expected true or false"),
        ("video.frames.0.boxes.0.track", DELETE, "video.frames[0].boxes[0].track: expected an integer"),
        ("video.file", "../clip.mp4", "must stay inside"),
    ],
)
def test_broken_labels_are_refused_with_the_path_of_the_problem(
    tmp_path: Path, path: str, value: Any, expected: str
) -> None:
    problems = problems_of(break_(minimal(tmp_path), path, value), tmp_path)
    assert any(expected in p for p in problems), problems


def test_a_track_twice_in_one_frame_is_refused(tmp_path: Path) -> None:
    document = minimal(tmp_path)
    box = {"box": [0, 0, 10, 30], "class": "person", "track": 1}
    document["video"]["frames"][0]["boxes"] = [box, dict(box)]
    assert any("appears twice" in p for p in problems_of(document, tmp_path))


def test_an_image_listed_twice_is_refused(tmp_path: Path) -> None:
    document = minimal(tmp_path)
    document["images"].append(copy.deepcopy(document["images"][0]))
    assert any("listed twice" in p for p in problems_of(document, tmp_path))


def test_a_symlink_out_of_the_set_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(b"x")
    root = tmp_path / "set"
    root.mkdir()
    document = minimal(root)
    (root / "images/link.jpg").symlink_to(outside)
    document["images"][0]["file"] = "images/link.jpg"
    assert any("must stay inside" in p for p in problems_of(document, root))


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    document = minimal(tmp_path)
    document["images"][0]["boxes"][0]["class"] = "dog"
    document["images"][0]["boxes"][1]["box"] = [1, 2]
    document["video"]["frames"][1]["index"] = 99
    assert len(problems_of(document, tmp_path)) == 3


@pytest.mark.parametrize(
    "content",
    [b"", b"{", b'{"schema": ', b"\xff\xfe garbage", b"[1, 2, 3]", b"null", b"[" * 100_000],
    ids=["empty", "brace", "truncated", "not-utf8", "list", "null", "deep"],
)
def test_files_that_are_not_a_labels_document_are_refused(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "labels.json"
    path.write_bytes(content)
    with pytest.raises(LabelsError):
        load_labels(path)


def test_an_oversize_labels_file_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    path = tmp_path / "labels.json"
    with path.open("wb") as f:
        f.truncate(MAX_LABELS_BYTES + 1)
    with pytest.raises(LabelsError, match="larger than"):
        load_labels(path)


def test_a_missing_labels_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LabelsError, match="cannot read"):
        load_labels(tmp_path / "nope.json")


def test_files_are_resolved_against_the_labels_folder(tmp_path: Path) -> None:
    document = minimal(tmp_path)
    (tmp_path / "labels.json").write_text(json.dumps(document))
    parsed = load_labels(tmp_path / "labels.json")
    assert parsed.images[0].file == (tmp_path / "images/a.jpg").resolve()
