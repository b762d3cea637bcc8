"""models/detector/images.py: the calibration list, the evaluation split it enforces, the model input."""

from __future__ import annotations

from pathlib import Path

import cv2
import images
import numpy as np
import pytest

from .conftest import DATA, DETECTOR_DIR

DOC = "opencv-doc 4.6.0+dfsg-12 usr/share/doc/opencv-doc/examples/data"


def write_list(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "calibration.list"
    path.write_text(body)
    return path


def test_sections_and_frames_are_read(tmp_path: Path) -> None:
    path = write_list(
        tmp_path,
        f"# comment\n[calibration]\n{DOC}/home.jpg\n{DOC}/vtest.avi 3\n\n[agreement]\n{DOC}/vtest.avi 17\n",
    )
    sections = images.read_list(path)
    assert [s.describe() for s in sections["calibration"]] == [
        "opencv-doc 4.6.0+dfsg-12 usr/share/doc/opencv-doc/examples/data/home.jpg",
        "opencv-doc 4.6.0+dfsg-12 usr/share/doc/opencv-doc/examples/data/vtest.avi#3",
    ]
    assert sections["agreement"][0].frame == 17


@pytest.mark.parametrize(
    "line",
    [
        f"{DOC}/vtest.avi 700",  # the labelled segment
        f"{DOC}/vtest.avi 794",
        f"{DOC}/vtest.avi 25",  # index % 25 == 0
        f"{DOC}/vtest.avi 37",  # index % 25 == 12
        f"{DOC}/vtest.avi",  # the whole video
        f"{DOC}/messi5.jpg",
        f"{DOC}/licenseplate_motion.jpg",
        f"{DOC}/basketball1.png",
        f"{DOC}/basketball2.png",
        "darknet 0.0.0+git20180914.61c9d02e-2+b4 usr/share/darknet/data/horses.jpg",
    ],
)
def test_an_evaluation_source_is_refused(tmp_path: Path, line: str) -> None:
    with pytest.raises(images.ListError, match="belongs to the evaluation set"):
        images.read_list(write_list(tmp_path, f"[calibration]\n{line}\n"))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (f"{DOC}/home.jpg\n", "in a \\[section\\]"),
        ("[calibration]\nopencv-doc home.jpg\n", "expected"),
        ("[calibration]\na b c 1 extra\n", "expected"),
        (f"[calibration]\n{DOC}/vtest.avi -3\n", "frame index must be >= 0"),
        ("[calibration]\nopencv-doc 1 /etc/passwd\n", "relative to the package root"),
        ("[calibration]\nopencv-doc 1 ../../etc/passwd\n", "relative to the package root"),
        (f"[calibration]\n{DOC}/home.jpg\n[agreement]\n{DOC}/home.jpg\n", "in both"),
    ],
)
def test_a_malformed_list_is_refused(tmp_path: Path, body: str, message: str) -> None:
    with pytest.raises(images.ListError, match=message):
        images.read_list(write_list(tmp_path, body))


def test_a_bad_frame_number_is_an_error_not_a_crash(tmp_path: Path, capsys) -> None:
    path = write_list(tmp_path, f"[calibration]\n{DOC}/vtest.avi three\n")
    assert images.main(["images.py", str(path), str(tmp_path), str(tmp_path / "out.npy")]) == 1
    assert capsys.readouterr().err.startswith("images: ")


def test_a_missing_or_unreadable_image_is_named(tmp_path: Path) -> None:
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8 truncated")
    for relpath in ("missing.jpg", "broken.jpg"):
        source = images.ImageSource("pkg", "1", relpath)
        with pytest.raises(images.ListError, match=f"pkg 1 {relpath}: cannot be read"):
            images.load_rgb(tmp_path, source)


def test_the_calibration_batch_is_written_in_the_models_input_range(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    frame = cv2.imread(str(DATA / "vtest_frame_0045.jpg"))
    cv2.imwrite(str(root / "a" / "one.png"), frame)
    cv2.imwrite(str(root / "a" / "two.png"), frame[::2, ::2])
    path = write_list(tmp_path, "[calibration]\npkg 1 a/one.png\npkg 1 a/two.png\n")
    assert images.main(["images.py", str(path), str(root), str(tmp_path / "calib.npy")]) == 0
    batch = np.load(tmp_path / "calib.npy")
    assert batch.shape == (2, 300, 300, 3) and batch.dtype == np.float32
    assert -1.0 <= batch.min() < -0.5 and 0.5 < batch.max() <= 1.0


def test_the_committed_list_calibrates_on_at_least_40_training_side_images() -> None:
    sections = images.read_list(DETECTOR_DIR / "calibration.list")  # raises on any evaluation source
    assert len(sections["calibration"]) >= 40
    assert len(sections["agreement"]) >= 20
