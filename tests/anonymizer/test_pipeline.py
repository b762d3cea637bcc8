"""The pipeline end to end on real models: the golden test, hold-over, fallbacks, bad frames."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.anonymizer import AnonymizerFactory, AnonymizerSection, AnonymizerUnavailable, build_anonymizer
from agent.anonymizer.pipeline import check_frame

from .kit import (
    DATA,
    DETECTOR,
    PERSON_BOX,
    REPO,
    make_models_dir,
    person_image,
    region_identical,
    section,
)

# A close-up group portrait of the evaluation set, used only as a fixed input: the SSD alone masks nobody.
CLOSE_UP = REPO / "eval/images/faceapi_sample6.jpg"


def test_golden_the_person_in_the_packaged_photo_is_removed(anonymizer_section: AnonymizerSection) -> None:
    anonymizer = build_anonymizer(anonymizer_section)
    original = person_image()
    result = anonymizer.process(original)
    assert [d.label for d in result.detections] == ["Person"]
    x0, y0, x1, y1 = PERSON_BOX
    assert result.mask[y0:y1, x0:x1].all()  # the whole person box is masked (and more: the margin)
    assert region_identical(original, result.image, PERSON_BOX) < 0.01
    assert np.array_equal(result.image[~result.mask], original[~result.mask])  # the rest is untouched
    assert 0.05 < result.masked_ratio < 0.3 and result.inpainter == "telea"
    assert set(result.timings) == {"detect", "mask", "inpaint"}
    # The detector, run again on the output, no longer finds anyone there.
    anonymizer.reset()
    assert [d for d in anonymizer.process(result.image).detections if d.label == "Person"] == []


def test_a_person_missed_for_a_frame_is_still_covered(anonymizer_section: AnonymizerSection) -> None:
    anonymizer = build_anonymizer(anonymizer_section)  # hold_frames = 5
    anonymizer.process(person_image())
    empty = np.full_like(person_image(), 120)
    for _ in range(5):
        held = anonymizer.process(empty)
        assert held.detections == () and held.mask[150, 230]
    assert not anonymizer.process(empty).mask.any()
    anonymizer.process(person_image())
    anonymizer.reset()
    assert not anonymizer.process(empty).mask.any()


def test_learned_inpainting_through_the_manifest(tmp_path: Path) -> None:
    tiny = (DATA / "tiny_inpaint_32.tflite").read_bytes()
    models = make_models_dir(tmp_path, extra={"inpaint/tiny.tflite": tiny})
    factory = AnonymizerFactory(section(models, inpaint="learned", inpaint_model="inpaint/tiny.tflite"))
    result = factory.create().process(person_image())
    assert result.inpainter == "learned" and factory.problem is None
    assert region_identical(person_image(), result.image, PERSON_BOX) < 0.01


def test_an_inpainting_model_that_is_not_one_falls_back_to_telea(tmp_path: Path) -> None:
    models = make_models_dir(tmp_path, extra={"inpaint/bad.tflite": b"not a model"})
    factory = AnonymizerFactory(section(models, inpaint="learned", inpaint_model="inpaint/bad.tflite"))
    assert factory.create().process(person_image()).inpainter == "telea"
    assert factory.problem is not None and "using Telea" in factory.problem


def test_fill_backend_uses_a_solid_fill(models_dir: Path) -> None:
    result = build_anonymizer(section(models_dir, inpaint="fill")).process(person_image())
    assert result.inpainter == "fill" and np.all(result.image[result.mask] == 128)


def test_a_tampered_detector_means_no_anonymizer(models_dir: Path) -> None:
    (models_dir / DETECTOR).write_bytes(b"x" + (models_dir / DETECTOR).read_bytes()[1:])
    factory = AnonymizerFactory(section(models_dir))
    with pytest.raises(AnonymizerUnavailable):
        factory.create()
    assert factory.problem is not None and "detector refused" in factory.problem


def test_a_signed_detector_that_is_no_model_is_unusable(tmp_path: Path) -> None:
    models = make_models_dir(tmp_path, extra={"detector/junk.tflite": b"junk" * 100})
    with pytest.raises(AnonymizerUnavailable, match="detector unusable"):
        build_anonymizer(section(models, detector="detector/junk.tflite"))


@pytest.mark.parametrize(
    "frame",
    [
        None,
        b"bytes",
        np.zeros((10, 10), np.uint8),
        np.zeros((10, 10, 4), np.uint8),
        np.zeros((10, 10, 3), np.float32),
        np.zeros((0, 10, 3), np.uint8),
        np.zeros((9000, 2, 3), np.uint8),
    ],
    ids=["none", "bytes", "grey", "bgra", "float", "empty", "huge"],
)
def test_frames_that_are_not_bgr_images_are_refused(frame: object) -> None:
    with pytest.raises(ValueError, match="BGR uint8"):
        check_frame(frame)


def test_any_frame_size_works(anonymizer_section: AnonymizerSection) -> None:
    anonymizer = build_anonymizer(anonymizer_section)
    for shape in [(1, 1, 3), (17, 3000, 3), (480, 640, 3)]:
        result = anonymizer.process(np.full(shape, 90, np.uint8))
        assert result.image.shape == shape and result.mask.shape == shape[:2]


def test_close_up_people_are_removed_through_their_faces(models_dir: Path) -> None:
    image = cv2.imread(str(CLOSE_UP), cv2.IMREAD_COLOR)
    without = build_anonymizer(section(models_dir, face_detection=False)).process(image)
    assert [d for d in without.detections if d.label == "Person"] == []  # why the face pass exists
    result = build_anonymizer(section(models_dir)).process(image)
    faces = [d for d in result.detections if d.label == "Face"]
    assert len(faces) == 4
    for face in faces:
        x0, y0, x1, y1 = face.box
        assert result.mask[y0:y1, x0:x1].all()
    assert np.array_equal(result.image[~result.mask], image[~result.mask])


def test_a_signed_face_model_that_is_no_model_is_unusable(tmp_path: Path) -> None:
    models = make_models_dir(tmp_path, extra={"face/junk.tflite": b"junk" * 100})
    factory = AnonymizerFactory(section(models, face_model="face/junk.tflite"))
    with pytest.raises(AnonymizerUnavailable, match="detector unusable"):
        factory.create()
    assert factory.problem is not None and "face/junk.tflite" in factory.problem


def test_the_ssd_is_not_accepted_as_a_face_model(tmp_path: Path) -> None:
    ssd = make_models_dir(tmp_path / "ssd") / DETECTOR
    models = make_models_dir(tmp_path, extra={"face/ssd.tflite": ssd.read_bytes()})
    with pytest.raises(AnonymizerUnavailable, match=r"detector unusable.*expected"):
        build_anonymizer(section(models, face_model="face/ssd.tflite"))
