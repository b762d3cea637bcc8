"""Signed manifests: what verifies, and every way a manifest or a file can fail to."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.security.manifest import (
    MAX_MANIFEST_BYTES,
    ManifestError,
    build_manifest,
    dumps,
    key_id,
    load_manifest,
    load_public_keys,
    parse_manifest,
    sign_manifest,
)


@pytest.fixture
def release_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "detector").mkdir()
    (tmp_path / "detector" / "ssd.tflite").write_bytes(b"TFL3" + bytes(range(256)) * 10)
    (tmp_path / "labels.txt").write_text("person\ncar\n")
    return tmp_path


def signed(tree: Path, key: Ed25519PrivateKey, **meta: dict) -> bytes:
    document = build_manifest(
        tree, ["detector/ssd.tflite", "labels.txt"], name="models", version="1", meta=meta or None
    )
    return dumps(sign_manifest(document, key)).encode()


def test_a_signed_manifest_verifies_and_returns_the_checked_bytes(tree: Path, release_key) -> None:
    manifest = parse_manifest(
        signed(tree, release_key, **{"labels.txt": {"licence": "Apache-2.0"}}), [release_key.public_key()]
    )
    assert (manifest.name, manifest.version, manifest.key_id) == (
        "models",
        "1",
        key_id(release_key.public_key()),
    )
    assert manifest.verify_file(tree, "detector/ssd.tflite") == (tree / "detector/ssd.tflite").read_bytes()
    assert manifest.entry("labels.txt").meta == {"licence": "Apache-2.0"}
    assert manifest.verify_tree(tree) == []


def test_a_tampered_file_is_refused(tree: Path, release_key) -> None:
    manifest = parse_manifest(signed(tree, release_key), [release_key.public_key()])
    data = bytearray((tree / "detector/ssd.tflite").read_bytes())
    data[100] ^= 1  # same size, one bit flipped
    (tree / "detector/ssd.tflite").write_bytes(bytes(data))
    with pytest.raises(ManifestError, match="SHA-256 does not match"):
        manifest.verify_file(tree, "detector/ssd.tflite")
    (tree / "labels.txt").write_text("person\n")
    with pytest.raises(ManifestError, match="size"):
        manifest.verify_file(tree, "labels.txt")
    assert len(manifest.verify_tree(tree)) == 2


def test_missing_and_unlisted_files_are_refused(tree: Path, release_key) -> None:
    manifest = parse_manifest(signed(tree, release_key), [release_key.public_key()])
    with pytest.raises(ManifestError, match="not listed"):
        manifest.verify_file(tree, "other.tflite")
    (tree / "labels.txt").unlink()
    with pytest.raises(ManifestError, match="cannot be read"):
        manifest.verify_file(tree, "labels.txt")


def test_an_altered_manifest_is_refused(tree: Path, release_key) -> None:
    document = json.loads(signed(tree, release_key))
    document["files"]["labels.txt"]["sha256"] = "0" * 64
    with pytest.raises(ManifestError, match="does not verify"):
        parse_manifest(json.dumps(document).encode(), [release_key.public_key()])


def test_a_manifest_signed_by_an_untrusted_key_is_refused(tree: Path, release_key) -> None:
    other = Ed25519PrivateKey.generate()
    with pytest.raises(ManifestError, match="not trusted"):
        parse_manifest(signed(tree, other), [release_key.public_key()])
    # Forging the kid of a trusted key does not help: the signature is checked with that key.
    document = json.loads(signed(tree, other))
    document["signature"]["kid"] = key_id(release_key.public_key())
    with pytest.raises(ManifestError, match="does not verify"):
        parse_manifest(json.dumps(document).encode(), [release_key.public_key()])


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d.pop("signature"), "not signed"),
        (lambda d: d["signature"].update(alg="none"), "not signed"),
        (lambda d: d["signature"].update(value=7), "malformed"),
        (lambda d: d["signature"].update(value="!!!"), "does not verify|base64url"),
        (lambda d: d.update(format="other"), "not a msec-manifest"),
    ],
)
def test_malformed_signatures_are_refused(tree: Path, release_key, mutate, message) -> None:
    document = json.loads(signed(tree, release_key))
    mutate(document)
    with pytest.raises(ManifestError, match=message):
        parse_manifest(json.dumps(document).encode(), [release_key.public_key()])


@pytest.mark.parametrize(
    "path", ["../etc/passwd", "/etc/passwd", "a/../../b", "a\\b", "", "a/./b", "nul\x00l"]
)
def test_paths_outside_the_folder_cannot_be_signed_or_loaded(tree: Path, release_key, path: str) -> None:
    body = {
        "format": "msec-manifest/1",
        "name": "m",
        "version": "1",
        "files": {path: {"sha256": "a" * 64, "size": 1}},
    }
    with pytest.raises(ManifestError):
        sign_manifest(body, release_key)


@pytest.mark.parametrize(
    "entry",
    [
        {"sha256": "A" * 64, "size": 1},
        {"sha256": "a" * 63, "size": 1},
        {"sha256": "a" * 64, "size": -1},
        {"sha256": "a" * 64, "size": True},
        {"sha256": "a" * 64},
        "text",
    ],
)
def test_malformed_entries_are_refused(release_key, entry) -> None:
    body = {"format": "msec-manifest/1", "name": "m", "version": "1", "files": {"f": entry}}
    with pytest.raises(ManifestError):
        sign_manifest(body, release_key)


def test_oversize_and_non_json_manifests_are_refused(tmp_path: Path, release_key) -> None:
    with pytest.raises(ManifestError, match="larger"):
        parse_manifest(b" " * (MAX_MANIFEST_BYTES + 1), [release_key.public_key()])
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (MAX_MANIFEST_BYTES + 10))
    with pytest.raises(ManifestError, match="larger"):
        load_manifest(big, [release_key.public_key()])
    with pytest.raises(ManifestError, match="cannot be read"):
        load_manifest(tmp_path / "absent.json", [release_key.public_key()])


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2048))
def test_garbage_never_escapes_as_anything_but_a_manifest_error(data: bytes) -> None:
    key = Ed25519PrivateKey.from_private_bytes(b"\x01" * 32).public_key()
    with pytest.raises(ManifestError):
        parse_manifest(data, [key])


def test_public_keys_load_from_files_and_folders(tmp_path: Path, release_key) -> None:
    pem = release_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "release.pem").write_bytes(pem)
    (tmp_path / "keys" / "README").write_text("ignored")
    assert [key_id(k) for k in load_public_keys([tmp_path / "keys"])] == [key_id(release_key.public_key())]
    (tmp_path / "bad.pem").write_text("not a key")
    with pytest.raises(ManifestError, match="not a PEM public key"):
        load_public_keys([tmp_path / "bad.pem"])
    from cryptography.hazmat.primitives.asymmetric import ec

    ec_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    (tmp_path / "ec.pem").write_bytes(ec_pem)
    with pytest.raises(ManifestError, match="not an Ed25519"):
        load_public_keys([tmp_path / "ec.pem"])
