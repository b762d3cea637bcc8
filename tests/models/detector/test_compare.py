"""models/detector/compare.py, run on the committed models: the int8 SSD keeps the fp16 original's contract
and its detections (a held-out vtest frame, never calibrated on, not in the evaluation set)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from compare import ANCHORS, Model, decode, main, match
from images import model_input

from .conftest import DATA, DETECTOR_DIR

FP16 = DETECTOR_DIR / "ssd_mobilenetv2_oidv4_fp16.tflite"
INT8 = DETECTOR_DIR / "ssd_mobilenetv2_oidv4_int8.tflite"
PERSON = 4  # line 5 of oidv4_labelmap.txt ("???" is class 0)


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(DATA / "vtest_frame_0045.jpg")), cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def fp16() -> Model:
    return Model(FP16)


@pytest.fixture(scope="module")
def int8() -> Model:
    return Model(INT8)


def test_the_label_map_has_one_line_per_class() -> None:
    labels = (DETECTOR_DIR / "oidv4_labelmap.txt").read_text().splitlines()
    assert len(labels) == 24 and labels[0] == "???" and labels[PERSON] == "Person" and labels[23] == "Car"


def test_the_int8_model_is_int8_end_to_end_with_the_documented_quantisation(int8: Model) -> None:
    assert int8.input["dtype"] == np.int8 and list(int8.input["shape"]) == [1, 300, 300, 3]
    scale, zero = int8.input["quantization"]
    # x in [-1, 1] maps onto the whole int8 range: int8 = uint8 pixel - 128.
    assert scale == pytest.approx(1 / 127.5) and zero == -1
    for output, classes in ((int8.box_output, 4), (int8.class_output, 24)):
        assert output["dtype"] == np.int8 and list(output["shape"]) == [1, len(ANCHORS), classes]
        assert output["quantization"][0] > 0


def test_the_fp16_original_takes_float_input(fp16: Model) -> None:
    assert fp16.input["dtype"] == np.float32 and list(fp16.input["shape"]) == [1, 300, 300, 3]
    assert [list(o["shape"]) for o in (fp16.box_output, fp16.class_output)] == [[1, 1917, 4], [1, 1917, 24]]


def test_int8_finds_the_people_fp16_finds(fp16: Model, int8: Model, frame: np.ndarray) -> None:
    x = model_input(frame)
    reference, candidate = fp16.run(x), int8.run(x)
    clear = decode(*reference, 0.45)
    assert sum(1 for cls, _, _ in clear if cls == PERSON) >= 4  # the frame has pedestrians
    pairs = match(clear, decode(*candidate, 0.35))
    assert len(pairs) == len(clear)
    assert min(iou for iou, _ in pairs) >= 0.6
    assert max(diff for _, diff in pairs) <= 0.1
    assert np.corrcoef(reference[1].ravel(), candidate[1].ravel())[0, 1] > 0.99


def test_a_blank_frame_gives_no_detection_in_either(fp16: Model, int8: Model) -> None:
    x = model_input(np.full((576, 768, 3), 128, np.uint8))
    assert decode(*fp16.run(x), 0.4) == [] and decode(*int8.run(x), 0.4) == []


def test_a_zero_encoding_decodes_to_its_anchor() -> None:
    boxes = np.zeros((len(ANCHORS), 4), np.float32)
    logits = np.full((len(ANCHORS), 24), -10.0, np.float32)
    logits[100, PERSON] = 5.0
    [(cls, score, box)] = decode(boxes, logits, 0.5)
    xc, yc, w, h = ANCHORS[100]
    assert cls == PERSON and score == pytest.approx(1 / (1 + np.exp(-5.0)))
    assert box == pytest.approx([xc - w / 2, yc - h / 2, xc + w / 2, yc + h / 2], abs=1e-6)


def test_matching_needs_the_same_class_and_overlap() -> None:
    box = np.array([0.1, 0.1, 0.5, 0.5])
    reference = [(PERSON, 0.9, box)]
    assert len(match(reference, [(PERSON, 0.8, box + 0.01)])) == 1
    assert match(reference, [(23, 0.8, box)]) == []  # a car where fp16 saw a person
    assert match(reference, [(PERSON, 0.8, box + 0.3)]) == []  # a person somewhere else


def test_the_build_gate_passes_the_committed_int8_and_fails_a_stricter_bar(tmp_path: Path, capsys) -> None:
    listing = tmp_path / "calibration.list"
    listing.write_text("[agreement]\ntest-data 1 vtest_frame_0045.jpg\n")
    args = ["compare.py", str(FP16), str(INT8), str(listing), str(DATA)]
    assert main(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 1 and report["clear_recall"] == 1.0 and report["speedup_int8_vs_fp16_best"] > 0
    assert main([*args, "--min-clear-recall", "1.01"]) == 1
    assert "int8 lost clear fp16 detections" in capsys.readouterr().err
