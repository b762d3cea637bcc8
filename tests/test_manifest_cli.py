"""`msec-agent manifest sign|verify` through the real CLI entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.cli import main


@pytest.fixture
def keys(tmp_path: Path) -> tuple[Path, Path]:
    key = Ed25519PrivateKey.generate()
    private = tmp_path / "release.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    public = tmp_path / "release.pub.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def test_sign_then_verify_then_tamper(tmp_path: Path, keys, capsys) -> None:
    private, public = keys
    root = tmp_path / "models"
    root.mkdir()
    (root / "a.tflite").write_bytes(b"model")
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"a.tflite": {"source": "npm x@1", "licence": "Apache-2.0"}}))
    manifest = tmp_path / "manifest.json"
    args = ["manifest", "sign", "--key", str(private), "--root", str(root), "--name", "models"]
    assert main([*args, "--version", "7", "--meta", str(meta), "--output", str(manifest), "a.tflite"]) == 0
    assert json.loads(manifest.read_text())["files"]["a.tflite"]["licence"] == "Apache-2.0"
    verify = ["manifest", "verify", "--trusted", str(public), "--root", str(root), str(manifest)]
    assert main(verify) == 0
    assert "OK (models 7, 1 files" in capsys.readouterr().out
    (root / "a.tflite").write_bytes(b"MODEL")
    assert main(verify) == 1
    assert "a.tflite: does not match" in capsys.readouterr().err


def test_a_bad_key_file_is_reported_without_its_content(tmp_path: Path, capsys) -> None:
    secretish = tmp_path / "key.pem"
    secretish.write_text("-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXZhbHVl\n-----END PRIVATE KEY-----\n")
    (tmp_path / "f").write_text("x")
    code = main(
        [
            "manifest",
            "sign",
            "--key",
            str(secretish),
            "--root",
            str(tmp_path),
            "--name",
            "n",
            "--version",
            "1",
            "f",
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "not a readable" in err and "c2VjcmV0" not in err


def test_a_missing_listed_file_is_a_clear_error(tmp_path: Path, keys, capsys) -> None:
    private, _ = keys
    code = main(
        [
            "manifest",
            "sign",
            "--key",
            str(private),
            "--root",
            str(tmp_path),
            "--name",
            "n",
            "--version",
            "1",
            "absent.tflite",
        ]
    )
    assert code == 1
    assert "cannot read a listed file" in capsys.readouterr().err
