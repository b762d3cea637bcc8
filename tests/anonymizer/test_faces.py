"""The face pass: anchors, letterbox geometry back to frame pixels, decode against known outputs, the
face-to-person expansion clipped to the frame, and the real BlazeFace model on a close-up photo."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from agent.anonymizer.faces import (
    BODY_BELOW,
    BODY_WIDTH,
    FACE_LABEL,
    HEAD_ABOVE,
    FaceDetector,
    Letterbox,
    blazeface_anchors,
    face_to_person,
)
from agent.anonymizer.runtime import ModelError, TfliteModel

from .kit import FACE_SOURCE, REPO, detector_files, person_image

# A group portrait from the evaluation set, used here only as a fixed input (nothing is tuned on it):
# four people whose faces fill the frame, which the SSD alone scores under its threshold.
CLOSE_UP = REPO / "eval/images/faceapi_sample6.jpg"


def logit(p: float) -> float:
    return math.log(p / (1 - p))


@pytest.fixture(scope="module")
def faces() -> FaceDetector:
    return FaceDetector(TfliteModel(FACE_SOURCE.read_bytes(), threads=1, name="face"), threshold=0.5)


def test_anchors_are_mediapipes_full_range_grid() -> None:
    anchors = blazeface_anchors(192)
    assert anchors.shape == (48 * 48, 2)
    np.testing.assert_allclose(anchors[0], [0.5 / 48, 0.5 / 48])
    np.testing.assert_allclose(anchors[1], [1.5 / 48, 0.5 / 48])  # x runs fastest
    np.testing.assert_allclose(anchors[-1], [47.5 / 48, 47.5 / 48])
    # The short-range layout (strides 8, 16, 16, 16; two anchors per cell per layer) for comparison.
    assert len(blazeface_anchors(128, (8, 16), per_cell=2)) == 16 * 16 * 2 + 8 * 8 * 2


@pytest.mark.parametrize(
    "width, height", [(640, 480), (480, 640), (1024, 683), (300, 300), (3000, 17), (1, 1)]
)
def test_letterbox_keeps_the_aspect_and_maps_the_content_onto_the_frame_exactly(
    width: int, height: int
) -> None:
    box = Letterbox.fit(width, height, 192)
    assert max(box.content_w, box.content_h) == 192
    assert abs(box.content_w / box.content_h - width / height) <= max(width / height, 1) / box.content_h
    # The content's far corner is exactly the frame's far corner.
    corner = box.to_frame(np.array([[0.0, 0.0, box.content_w / 192, box.content_h / 192]]))
    np.testing.assert_allclose(corner, [[0, 0, width, height]], atol=1e-9)


def test_letterbox_image_is_the_scaled_frame_at_the_top_left_and_black_elsewhere() -> None:
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[120:360, 320:480] = 255  # a white rectangle: x 320..480, y 120..360
    box = Letterbox.fit(640, 480, 192)
    image = box.image(frame)
    assert image.shape == (192, 192, 3) and (box.content_w, box.content_h) == (192, 144)
    assert not image[144:].any()  # the padding below the content
    ys, xs = np.nonzero(image[:, :, 0] > 127)
    found = np.array([[xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]]) / 192
    np.testing.assert_allclose(box.to_frame(found), [[320, 120, 160, 240]], atol=640 / 192)


def test_letterbox_refuses_empty_sizes() -> None:
    with pytest.raises(ValueError):
        Letterbox.fit(0, 10, 192)


def test_face_grows_into_a_head_and_body_box() -> None:
    face = (500, 100, 540, 150)  # 40 x 50
    x0, y0, x1, y1 = face_to_person(face, 1920, 1080)
    assert (x1 - x0) == pytest.approx(40 * BODY_WIDTH, abs=2) and (x0 + x1) / 2 == pytest.approx(520, abs=1)
    assert y0 == math.floor(100 - 50 * HEAD_ABOVE) and y1 == math.ceil(150 + 50 * BODY_BELOW)
    assert x0 <= 500 and x1 >= 540 and y0 <= 100  # the face itself is inside


@pytest.mark.parametrize(
    "face, expected",
    [
        ((0, 0, 30, 30), lambda b: b[0] == 0 and b[1] == 0),  # top left corner
        ((600, 400, 640, 480), lambda b: b[2] == 640 and b[3] == 480),  # bottom right corner
        ((-20, -20, 20, 20), lambda b: b[0] == 0 and b[1] == 0),  # a face partly outside
    ],
)
def test_face_expansion_is_clipped_to_the_frame(face: tuple[int, int, int, int], expected) -> None:
    box = face_to_person(face, 640, 480)
    assert 0 <= box[0] < box[2] <= 640 and 0 <= box[1] < box[3] <= 480 and expected(box)


def test_decode_against_known_outputs(faces: FaceDetector) -> None:
    n = len(faces.anchors)
    raw = np.zeros((n, 16), np.float32)
    logits = np.full(n, -20.0, np.float32)
    cell = 10 * 48 + 20  # anchor centre ((20.5)/48, (10.5)/48)
    raw[cell, :4] = [9.6, -4.8, 38.4, 19.2]  # offsets and size in input pixels (192)
    logits[cell] = logit(0.9)
    logits[cell + 1] = logit(0.4)  # under the threshold
    rects, scores = faces._decode(raw, logits)
    np.testing.assert_allclose(scores, [0.9], rtol=1e-6)
    xc, yc = 20.5 / 48 + 0.05, 10.5 / 48 - 0.025
    np.testing.assert_allclose(rects[0], [xc - 0.1, yc - 0.05, 0.2, 0.1], atol=1e-6)


def test_decode_survives_hostile_values(faces: FaceDetector) -> None:
    n = len(faces.anchors)
    raw = np.zeros((n, 16), np.float32)
    raw[0, :4] = [np.nan, 0, 10, 10]
    raw[1, :4] = [0, 0, -10, 10]  # negative size
    raw[2, :4] = [0, 0, 1e30, 1e30]  # absurd size
    logits = np.full(n, -np.inf, np.float32)
    logits[:3] = np.inf
    rects, scores = faces._decode(raw, logits)
    assert len(rects) == 0 and len(scores) == 0


def test_a_model_with_other_outputs_is_refused() -> None:
    ssd, _ = detector_files()
    with pytest.raises(ModelError, match=r"square input a multiple of 4|expected outputs"):
        FaceDetector(TfliteModel(ssd.read_bytes(), threads=1, name="ssd"))


def test_finds_every_face_of_a_close_up_and_covers_each_person(faces: FaceDetector) -> None:
    image = cv2.imread(str(CLOSE_UP), cv2.IMREAD_COLOR)
    assert image is not None
    height, width = image.shape[:2]
    detections = faces.detect(image)
    assert len(detections) == 4 and all(d.label == FACE_LABEL and d.score >= 0.5 for d in detections)
    for d in detections:
        x0, y0, x1, y1 = d.box
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert y1 == height  # a face this close: the body below it reaches the bottom of the frame
    # Four people side by side: four distinct boxes, not one face found four times.
    centres = sorted((d.box[0] + d.box[2]) / 2 for d in detections)
    assert min(np.diff(centres)) > width / 10
    # Mirrored, the same faces are found at the mirrored places (the letterbox pads right and bottom, so
    # this also checks that the padding does not shift boxes).
    mirrored = sorted(width - (d.box[0] + d.box[2]) / 2 for d in faces.detect(image[:, ::-1].copy()))
    np.testing.assert_allclose(sorted(mirrored), centres, atol=width * 0.03)


def test_no_face_where_there_is_none(faces: FaceDetector) -> None:
    # The packaged field photo: one person seen from behind, a dog and a horse.
    assert faces.detect(person_image()) == []
    assert faces.detect(np.full((480, 640, 3), 128, np.uint8)) == []
