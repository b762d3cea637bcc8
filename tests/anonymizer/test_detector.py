"""SSD decode and NMS against known outputs, tiling, and the detector on a real photo."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agent.anonymizer.detector import SsdDetector, decode, nms, read_labels, ssd_anchors, tile_regions
from agent.anonymizer.runtime import ModelError, TfliteModel

from .kit import PERSON_BOX, detector_files, person_image

LABELS = ["???", "Bicycle", "Person", "Laptop"]
WANTED = np.array([False, True, True, False])


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def test_anchors_match_mediapipe_settings() -> None:
    anchors = ssd_anchors(300)
    assert anchors.shape == (1917, 4)  # 19²·3 + (10² + 5² + 3² + 2² + 1²)·6
    # First cell of the 19x19 layer: centre (0.5/19, 0.5/19), scales 0.1, 0.2 (ratio 2), 0.2 (ratio 1/2).
    np.testing.assert_allclose(anchors[0], [0.5 / 19, 0.5 / 19, 0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(
        anchors[1], [0.5 / 19, 0.5 / 19, 0.2 * math.sqrt(2), 0.2 / math.sqrt(2)], rtol=1e-6
    )
    # The last anchor: the 1x1 layer's interpolated scale sqrt(0.95 * 1.0), ratio 1, centred.
    np.testing.assert_allclose(anchors[-1], [0.5, 0.5, math.sqrt(0.95), math.sqrt(0.95)], rtol=1e-6)


def known_outputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    anchors = np.array([[0.5, 0.5, 0.2, 0.4], [0.25, 0.25, 0.1, 0.1], [0.8, 0.8, 0.1, 0.1]], np.float32)
    boxes = np.zeros((3, 4), np.float32)
    boxes[1] = [10 * 0.5, 10 * -0.5, 5 * math.log(2.0), 0.0]  # yc +0.5·h, xc -0.5·w, h times 2, w times 1
    logits = np.full((3, 4), -10.0, np.float32)
    logits[0, 2] = logit(0.9)  # a Person
    logits[1, 1] = logit(0.6)  # a Bicycle
    logits[2, 3] = logit(0.99)  # a Laptop: not a class we remove
    return boxes, logits, anchors


def test_decode_against_known_outputs() -> None:
    boxes, logits, anchors = known_outputs()
    rects, scores, classes = decode(boxes, logits, anchors, WANTED, 0.5)
    assert classes.tolist() == [2, 1]
    np.testing.assert_allclose(scores, [0.9, 0.6], rtol=1e-5)
    np.testing.assert_allclose(rects[0], [0.4, 0.3, 0.2, 0.4], atol=1e-6)  # zero encoding: the anchor
    # anchor 1: xc 0.25 - 0.05, yc 0.25 + 0.05, w 0.1, h 0.2
    np.testing.assert_allclose(rects[1], [0.2 - 0.05, 0.3 - 0.1, 0.1, 0.2], atol=1e-6)


def test_decode_threshold_and_best_wanted_class() -> None:
    boxes, logits, anchors = known_outputs()
    assert decode(boxes, logits, anchors, WANTED, 0.7)[2].tolist() == [2]
    logits[0, 3] = logit(0.95)  # also a Laptop, more than a Person: still masked as a Person
    _, scores, classes = decode(boxes, logits, anchors, WANTED, 0.5)
    assert classes[0] == 2 and scores[0] == pytest.approx(0.9, rel=1e-5)


def test_decode_survives_hostile_values() -> None:
    boxes, logits, anchors = known_outputs()
    boxes[0] = [np.nan, np.inf, 1e30, -1e30]
    logits[1, 1] = np.inf
    rects, scores, _ = decode(boxes, logits, anchors, WANTED, 0.5)
    assert np.isfinite(rects).all() and np.isfinite(scores).all()


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    rects = np.array([[10, 10, 100, 200], [12, 14, 100, 196], [300, 10, 50, 50]], np.float64)
    scores = np.array([0.6, 0.9, 0.5])
    assert nms(rects, scores, 0.3, 0.45).tolist() == [1, 2]
    assert nms(np.zeros((0, 4)), np.zeros(0), 0.3, 0.45).tolist() == []


@pytest.mark.parametrize("tiling, count", [("off", 1), ("2x1", 3), ("2x2", 5)])
def test_tiles_overlap_and_cover_the_frame(tiling: str, count: int) -> None:
    regions = tile_regions(640, 480, tiling)
    assert len(regions) == count and regions[0] == (0, 0, 640, 480)
    covered = np.zeros((480, 640), bool)
    for x0, y0, x1, y1 in regions[1:] or regions:
        assert 0 <= x0 < x1 <= 640 and 0 <= y0 < y1 <= 480
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    if count > 1:
        assert regions[1][2] > regions[2][0]  # neighbours overlap: no one is cut in half by a border


def iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def detector(**options: object) -> SsdDetector:
    model, labels = detector_files()
    return SsdDetector(
        TfliteModel(model.read_bytes(), name="ssd"), read_labels(labels.read_bytes()), ["Person"], **options
    )  # type: ignore[arg-type]


@pytest.mark.parametrize("tiling", ["off", "2x1"])
def test_the_person_in_the_photo_is_found(tiling: str) -> None:
    found = detector(tiling=tiling).detect(person_image())
    people = [d for d in found if d.label == "Person"]
    assert len(people) == 1 and people[0].score > 0.4
    assert iou(people[0].box, PERSON_BOX) > 0.7


def test_an_empty_frame_has_no_detections() -> None:
    assert detector().detect(np.full((480, 640, 3), 127, np.uint8)) == []


def test_classes_must_exist_in_the_label_map() -> None:
    model, labels = detector_files()
    with pytest.raises(ModelError, match="not in the label map: Pedestrian"):
        SsdDetector(
            TfliteModel(model.read_bytes()), read_labels(labels.read_bytes()), ["Person", "Pedestrian"]
        )


@pytest.mark.parametrize("data", [b"", b"only-one\n", b"\xff\xfe\x00bad"])
def test_bad_label_maps_are_refused(data: bytes) -> None:
    with pytest.raises(ModelError):
        read_labels(data)
