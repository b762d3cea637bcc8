"""The [anonymizer] table: defaults, and garbage refused with the key path."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from agent.anonymizer import AnonymizerSection
from agent.anonymizer.config import load_section
from agent.core.config import ConfigError


def test_defaults_are_the_shipped_models() -> None:
    section = AnonymizerSection()
    assert section.detector.endswith("int8.tflite") and section.classes[0] == "Person"
    assert section.api.max_body_bytes <= 4 * 2**20
    assert section.face_detection and section.face_model == "face/face_detection_full_range.tflite"
    assert section.face_threshold == 0.5


@pytest.mark.parametrize(
    "bad",
    [
        {"models_dir": "relative/models"},
        {"detector": "/etc/passwd"},
        {"detector": "../outside.tflite"},
        {"labels": "a/../../b"},
        {"threads": 0},
        {"threads": "2"},
        {"score_threshold": 1.5},
        {"score_threshold": float("nan")},
        {"tiling": "3x3"},
        {"face_detection": "yes"},
        {"face_detection": 2},
        {"face_model": ""},
        {"face_model": "/abs/face.tflite"},
        {"face_model": "face/../../face.tflite"},
        {"face_model": "face\\face.tflite"},
        {"face_threshold": 0.0},
        {"inpaint_budget_ms": -1.0},
        {"inpaint_budget_ms": float("nan")},
        {"inpaint_budget_ms": "30"},
        {"inpaint_budget_ms": 1e9},
        {"face_threshold": 1.0},
        {"face_threshold": -0.5},
        {"face_threshold": float("inf")},
        {"face_threshold": float("nan")},
        {"face_threshold": "high"},
        {"inpaint": "magic"},
        {"hold_frames": -1},
        {"jpeg_quality": 101},
        {"queue_depth": 0},
        {"classes": []},
        {"classes": ["bad\nname"]},
        {"trusted_keys": []},
        {"api": {"max_body_bytes": 64 * 2**20}},
        {"api": {"max_pixels": 10}},
        {"unknown": 1},
    ],
)
def test_garbage_is_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        AnonymizerSection(**bad)


def test_load_section_reads_only_the_anonymizer_table(tmp_path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(
        '[agent]\ndevice_id = "x"\n[other]\nk = 1\n[anonymizer]\nmodels_dir = "/m"\nthreads = 3\n'
    )
    section = load_section(path)
    assert section.models_dir == "/m" and section.threads == 3


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('[agent]\ndevice_id = "x"\n', "expected an [anonymizer] table"),
        ('anonymizer = "file:/x"\n', "expected an [anonymizer] table"),
        ("[anonymizer]\nthreads = 0\n", "anonymizer.threads"),
        ("[anonymizer\n", "syntax error"),
    ],
)
def test_load_section_reports_problems(tmp_path, text: str, fragment: str) -> None:
    path = tmp_path / "agent.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=re.escape(fragment)):
        load_section(path)
