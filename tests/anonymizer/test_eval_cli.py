"""`msec-agent eval`: the real anonymizer over a small slice of the evaluation set, a broken anonymizer that
must be caught, and every file or setting that cannot be used."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from agent.anonymizer.eval_cli import main, read_inpaint_report

from .kit import make_models_dir

REPO = Path(__file__).resolve().parents[2]
EVAL = REPO / "eval"
VIDEO_FRAMES = 6


def script() -> str:
    beside = Path(sys.executable).parent / "msec-agent"
    found = str(beside) if beside.exists() else shutil.which("msec-agent")
    assert found, "the msec-agent console script is not installed (pip install -e .)"
    return found


@pytest.fixture
def small_set(tmp_path: Path) -> Path:
    """A slice of eval/: one person photo, one negative, the first frames of the video with their labels."""
    labels = json.loads((EVAL / "labels.json").read_text())
    root = tmp_path / "set"
    (root / "images").mkdir(parents=True)
    keep = {"images/darknet_person.jpg", "images/darknet_eagle.jpg"}
    images = [entry for entry in labels["images"] if entry["file"] in keep]
    for entry in images:
        shutil.copyfile(EVAL / entry["file"], root / entry["file"])
    video = labels["video"]
    capture = cv2.VideoCapture(str(EVAL / video["file"]))
    writer = cv2.VideoWriter(
        str(root / "clip.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (video["width"], video["height"])
    )
    for _ in range(VIDEO_FRAMES):
        ok, frame = capture.read()
        assert ok
        writer.write(frame)
    writer.release()
    capture.release()
    video = {**video, "file": "clip.avi", "frames": video["frames"][:VIDEO_FRAMES]}
    (root / "labels.json").write_text(json.dumps({**labels, "images": images, "video": video}))
    return root / "labels.json"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    models = make_models_dir(tmp_path)
    path = tmp_path / "agent.toml"
    path.write_text(
        "[anonymizer]\n"
        f'models_dir = "{models}"\n'
        'detector = "detector/ssd.tflite"\nlabels = "detector/labels.txt"\ninpaint = "telea"\nthreads = 1\n'
    )
    return path


def args(labels: Path, out: Path, **extra: Any) -> argparse.Namespace:
    values = {
        "labels": labels,
        "config": None,
        "models_dir": Path("models"),
        "out": out,
        "inpaint_report": None,
        "no_video": False,
        "require_goal": False,
    }
    return argparse.Namespace(**{**values, **extra})


def test_the_real_anonymizer_is_measured_end_to_end(small_set: Path, config: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    inpaint = tmp_path / "inpaint.json"
    inpaint.write_text('{"psnr_db": {"learned": 24.1, "telea": 22.0}}')
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    command = [script(), "eval", "--labels", small_set, "--config", config, "--out", out]
    done = subprocess.run(
        [*map(str, command), "--inpaint-report", str(inpaint)],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "images (2 frames" in done.stdout and "track-leak rate" in done.stdout
    report = json.loads(out.read_text())
    # The one person of darknet/person.jpg (271 px tall) is found and masked; the eagle photo stays clean.
    assert report["images"]["recall"]["person"]["goal"] == {"anonymized": 1, "total": 1, "recall": 1.0}
    assert report["images"]["over_masking_negatives"]["ratio"] < 0.05
    assert report["video"]["frames"] == VIDEO_FRAMES
    assert report["video"]["track_leak"]["total"] >= 6
    assert report["inpainting"]["available"] and report["inpainting"]["report"]["psnr_db"]["telea"] == 22.0
    assert report["anonymizer"]["detector"] == "detector/ssd.tflite"


class NothingMasked:
    """A broken anonymizer (detector dead, frames passed through): the evaluation must expose it."""

    def __init__(self, shape_error: bool = False) -> None:
        self.shape_error = shape_error

    def process(self, frame_bgr: np.ndarray) -> Any:
        height, width = frame_bgr.shape[:2]
        mask = np.zeros((height, width + int(self.shape_error)), dtype=bool)
        return argparse.Namespace(image=frame_bgr.copy(), mask=mask)

    def reset(self) -> None:
        pass


def test_an_anonymizer_that_masks_nothing_fails_the_goal(
    small_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report.json"
    code = main(args(small_set, out, require_goal=True), builder=lambda section: NothingMasked())
    assert code == 3
    report = json.loads(out.read_text())
    assert report["images"]["recall"]["person"]["goal"]["recall"] == 0.0
    leak = report["video"]["track_leak"]
    assert leak["leaking"] == leak["total"] > 0
    assert report["video"]["frame_leak"]["rate"] == 1.0
    assert report["goal"]["met"] is False
    assert "NOT MET" in capsys.readouterr().out


def test_without_require_goal_a_failed_goal_still_exits_0(small_set: Path, tmp_path: Path) -> None:
    code = main(args(small_set, tmp_path / "r.json", no_video=True), builder=lambda section: NothingMasked())
    assert code == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert "video" not in report
    # Without the video the track-leak rate is unmeasured, so the goal cannot be met.
    assert report["goal"]["met"] is False


def test_a_mask_of_the_wrong_shape_stops_the_evaluation(
    small_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(args(small_set, tmp_path / "r.json"), builder=lambda section: NothingMasked(shape_error=True))
    assert code == 1
    assert "does not match the frame" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_broken_labels_are_listed_not_raised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    labels = tmp_path / "labels.json"
    labels.write_text('{"schema": "msec-privacy-eval/1", "images": [{"file": "../x.jpg"}]}')
    assert main(args(labels, tmp_path / "r.json"), builder=lambda section: NothingMasked()) == 1
    err = capsys.readouterr().err
    assert "images[0].file: must stay inside" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('[agent]\ndevice_id = "x"\n', "expected an [anonymizer] table"),
        ("[anonymizer\n", "syntax error"),
        ('[anonymizer]\nmodels_dir = "relative"\n', "anonymizer.models_dir"),
        ('[anonymizer]\nmodels_dir = "/nowhere"\nthreads = 99\n', "anonymizer.threads"),
        ('[anonymizer]\nmodels_dir = "/nowhere"\n', "anonymizer unavailable"),
    ],
    ids=["no-table", "bad-toml", "relative-dir", "bad-value", "no-models"],
)
def test_a_config_that_cannot_be_used_is_a_clear_error(
    small_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, expected: str
) -> None:
    config = tmp_path / "agent.toml"
    config.write_text(content)
    assert main(args(small_set, tmp_path / "r.json", config=config)) == 1
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_a_video_shorter_than_its_labels_is_an_error(
    small_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document = json.loads(small_set.read_text())
    frame = document["video"]["frames"][-1]
    document["video"]["frames"].append({**frame, "index": frame["index"] + 1})
    small_set.write_text(json.dumps(document))
    assert main(args(small_set, tmp_path / "r.json"), builder=lambda section: NothingMasked()) == 1
    assert f"{VIDEO_FRAMES} frame(s) decoded, labels have {VIDEO_FRAMES + 1}" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["size", "garbage"])
def test_an_image_that_does_not_match_its_labels_is_an_error(
    small_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    image = small_set.parent / "images/darknet_person.jpg"
    if damage == "size":
        cv2.imwrite(str(image), np.zeros((10, 10, 3), np.uint8))
    else:
        image.write_bytes(b"\xff\xd8 truncated jpeg")
    assert main(args(small_set, tmp_path / "r.json"), builder=lambda section: NothingMasked()) == 1
    err = capsys.readouterr().err
    assert "darknet_person.jpg" in err and ("labels say" in err or "cannot decode" in err)


def test_an_unwritable_report_path_is_an_error(
    small_set: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "taken").mkdir()
    code = main(args(small_set, tmp_path / "taken", no_video=True), builder=lambda section: NothingMasked())
    assert code == 1
    assert "cannot write" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "available"),
    [
        (None, False),
        (b"{not json", False),
        (b"[1, 2]", False),
        (b"\xff\xfe", False),
        (b'{"ssim": 0.9}', True),
    ],
    ids=["missing", "garbage", "list", "binary", "object"],
)
def test_the_inpainting_report_is_included_only_when_usable(
    tmp_path: Path, content: bytes | None, available: bool
) -> None:
    path = tmp_path / "eval.json"
    if content is not None:
        path.write_bytes(content)
    result = read_inpaint_report(path)
    assert result["available"] is available
    if not available:
        assert str(path) in result["reason"]
