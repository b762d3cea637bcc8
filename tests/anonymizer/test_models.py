"""Models load only through the signed manifest: a tampered, unsigned or missing detector is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.anonymizer import AnonymizerSection, AnonymizerUnavailable
from agent.anonymizer.models import verify_models

from .kit import DATA, DETECTOR, FACE_MODEL, LABELS, make_models_dir, section


def test_verified_bytes_are_exactly_the_files(
    models_dir: Path, anonymizer_section: AnonymizerSection
) -> None:
    models = verify_models(anonymizer_section)
    assert models.detector == (models_dir / DETECTOR).read_bytes()
    assert models.labels == (models_dir / LABELS).read_bytes()
    assert models.inpaint is None and models.manifest_version == "test"
    assert models.face == (models_dir / FACE_MODEL).read_bytes()


def test_a_tampered_detector_is_refused(models_dir: Path, anonymizer_section: AnonymizerSection) -> None:
    data = bytearray((models_dir / DETECTOR).read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit
    (models_dir / DETECTOR).write_bytes(bytes(data))
    with pytest.raises(AnonymizerUnavailable, match="SHA-256 does not match"):
        verify_models(anonymizer_section)


def test_a_replaced_label_map_is_refused(models_dir: Path, anonymizer_section: AnonymizerSection) -> None:
    (models_dir / LABELS).write_text("???\nNothing\n")
    with pytest.raises(AnonymizerUnavailable, match=r"labels\.txt"):
        verify_models(anonymizer_section)


def test_an_altered_manifest_is_refused(models_dir: Path, anonymizer_section: AnonymizerSection) -> None:
    manifest = json.loads((models_dir / "manifest.json").read_text())
    manifest["files"][DETECTOR]["size"] += 1
    (models_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(AnonymizerUnavailable, match="does not verify"):
        verify_models(anonymizer_section)


def test_an_unsigned_manifest_is_refused(models_dir: Path, anonymizer_section: AnonymizerSection) -> None:
    manifest = json.loads((models_dir / "manifest.json").read_text())
    del manifest["signature"]
    (models_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(AnonymizerUnavailable, match="not signed"):
        verify_models(anonymizer_section)


def test_a_manifest_signed_by_an_untrusted_key_is_refused(models_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.pem"
    other.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(AnonymizerUnavailable, match="not trusted"):
        verify_models(section(models_dir, trusted_keys=[str(other)]))


@pytest.mark.parametrize("missing", ["manifest.json", DETECTOR, "keys/test.pem"])
def test_missing_files_make_the_anonymizer_unavailable(models_dir: Path, missing: str) -> None:
    (models_dir / missing).unlink()
    with pytest.raises(AnonymizerUnavailable):
        verify_models(section(models_dir))


def test_a_detector_not_listed_in_the_manifest_is_refused(models_dir: Path) -> None:
    (models_dir / "detector/other.tflite").write_bytes((models_dir / DETECTOR).read_bytes())
    with pytest.raises(AnonymizerUnavailable, match="not listed"):
        verify_models(section(models_dir, detector="detector/other.tflite"))


def test_a_tampered_inpainting_model_is_not_loaded_and_telea_takes_over(tmp_path: Path) -> None:
    tiny = (DATA / "tiny_inpaint_32.tflite").read_bytes()
    models = make_models_dir(tmp_path, extra={"inpaint/glcic.tflite": tiny})
    learned = section(models, inpaint="learned", inpaint_model="inpaint/glcic.tflite")
    assert verify_models(learned).inpaint == tiny
    (models / "inpaint/glcic.tflite").write_bytes(tiny[:-1] + b"\x00")
    refused = verify_models(learned)
    assert refused.inpaint is None and refused.detector
    assert refused.inpaint_problem is not None and "using Telea" in refused.inpaint_problem


def test_a_tampered_face_detector_makes_the_anonymizer_unavailable(models_dir: Path) -> None:
    data = bytearray((models_dir / FACE_MODEL).read_bytes())
    data[len(data) // 3] ^= 0x80
    (models_dir / FACE_MODEL).write_bytes(bytes(data))
    # Fail-closed: the face pass is configured, so running without it would expose close-up people.
    with pytest.raises(AnonymizerUnavailable, match="face detector refused"):
        verify_models(section(models_dir))


def test_a_missing_face_detector_makes_the_anonymizer_unavailable(models_dir: Path) -> None:
    (models_dir / FACE_MODEL).unlink()
    with pytest.raises(AnonymizerUnavailable, match="face detector refused"):
        verify_models(section(models_dir))


def test_with_the_face_pass_off_no_face_model_is_needed(models_dir: Path) -> None:
    (models_dir / FACE_MODEL).unlink()
    models = verify_models(section(models_dir, face_detection=False))
    assert models.face is None and models.detector
