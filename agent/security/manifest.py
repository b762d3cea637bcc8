"""Signed file manifests: the seed's "module signature validation", applied to models and the image.

A manifest is a JSON document listing files with their size and SHA-256, signed with Ed25519 by a release
key. The agent holds only public keys (trusted keys); it refuses a file whose manifest is unsigned, signed by
an unknown key, altered, or whose bytes do not match. The private key never lives on the device or in the
repository: it is the release engineer's (models) or the fleet operator's (images).

Document shape (keys sorted; ``signature`` covers the canonical JSON of everything else)::

    {"format": "msec-manifest/1", "name": "models", "version": "2026.11.26",
     "files": {"detector/ssd.tflite": {"sha256": "…", "size": 123, "source": "…", "licence": "…"}},
     "signature": {"alg": "Ed25519", "kid": "3f1c…", "value": "<base64url>"}}

Paths are relative, POSIX, without ``..``: a manifest can never point outside the folder it describes.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

FORMAT = "msec-manifest/1"
ALGORITHM = "Ed25519"
# A manifest is small; anything bigger is not one of ours (and must not exhaust memory to find out).
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
_CHUNK = 1024 * 1024


class ManifestError(Exception):
    """A manifest or a file it lists cannot be trusted. The message names the file, never key material."""


@dataclass(frozen=True, slots=True)
class ManifestFile:
    path: str
    sha256: str
    size: int
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest whose signature verified against a trusted key."""

    name: str
    version: str
    key_id: str
    files: Mapping[str, ManifestFile]

    def entry(self, relpath: str) -> ManifestFile:
        try:
            return self.files[_normalise(relpath)]
        except KeyError:
            raise ManifestError(f"{relpath}: not listed in the {self.name} manifest") from None

    def verify_file(self, root: Path, relpath: str) -> bytes:
        """Read ``root/relpath`` and return its bytes if they match the manifest.

        Returning the verified bytes (rather than a path) means the caller loads exactly what was checked:
        no window in which the file could be swapped between the check and the load.
        """
        entry = self.entry(relpath)
        path = root / entry.path
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ManifestError(f"{entry.path}: cannot be read ({exc.strerror or exc})") from None
        if len(data) != entry.size:
            raise ManifestError(f"{entry.path}: size {len(data)} does not match the manifest's {entry.size}")
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise ManifestError(f"{entry.path}: SHA-256 does not match the manifest (altered or corrupt)")
        return data

    def verify_tree(self, root: Path) -> list[str]:
        """Check every listed file, streaming (large trees); return the problems, empty when all match."""
        problems = []
        for entry in self.files.values():
            path = root / entry.path
            try:
                size, digest = _digest_file(path)
            except OSError as exc:
                problems.append(f"{entry.path}: cannot be read ({exc.strerror or exc})")
                continue
            if size != entry.size or digest != entry.sha256:
                problems.append(f"{entry.path}: does not match the manifest (altered or corrupt)")
        return problems


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short, stable name for a public key: the first 16 hex digits of SHA-256 of its raw bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def build_manifest(
    root: Path,
    paths: Iterable[str],
    *,
    name: str,
    version: str,
    meta: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The unsigned document for ``paths`` (relative to ``root``), with optional per-file metadata."""
    files: dict[str, Any] = {}
    for relpath in paths:
        normal = _normalise(relpath)
        size, digest = _digest_file(root / normal)
        files[normal] = {**dict((meta or {}).get(normal, {})), "sha256": digest, "size": size}
    return {"format": FORMAT, "name": name, "version": version, "files": files}


def sign_manifest(document: Mapping[str, Any], private_key: Ed25519PrivateKey) -> dict[str, Any]:
    """A copy of ``document`` with a ``signature`` over its canonical form."""
    body = {k: v for k, v in document.items() if k != "signature"}
    _parse_files(body)  # refuse to sign what we would refuse to load
    signature = private_key.sign(_canonical(body))
    return {
        **body,
        "signature": {
            "alg": ALGORITHM,
            "kid": key_id(private_key.public_key()),
            "value": base64.urlsafe_b64encode(signature).rstrip(b"=").decode(),
        },
    }


def dumps(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def parse_manifest(data: bytes, trusted_keys: Sequence[Ed25519PublicKey]) -> Manifest:
    """Verify a manifest's signature against ``trusted_keys`` and return its entries."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"manifest is larger than {MAX_MANIFEST_BYTES} bytes")
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"manifest is not JSON ({exc.__class__.__name__})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ManifestError(f"manifest is not a {FORMAT} document")
    signature = document.get("signature")
    if not isinstance(signature, dict) or signature.get("alg") != ALGORITHM:
        raise ManifestError(f"manifest is not signed with {ALGORITHM}")
    kid, value = signature.get("kid"), signature.get("value")
    if not isinstance(kid, str) or not isinstance(value, str):
        raise ManifestError("manifest signature is malformed")
    keys = [key for key in trusted_keys if key_id(key) == kid]
    if not keys:
        raise ManifestError(f"manifest is signed by key {kid[:16]!r}, which is not trusted")
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (ValueError, TypeError):
        raise ManifestError("manifest signature is not base64url") from None
    body = {k: v for k, v in document.items() if k != "signature"}
    try:
        keys[0].verify(raw, _canonical(body))
    except InvalidSignature:
        raise ManifestError(
            "manifest signature does not verify (altered, or signed by another key)"
        ) from None
    name, version = body.get("name"), body.get("version")
    if not isinstance(name, str) or not isinstance(version, str):
        raise ManifestError("manifest lacks a name or version")
    return Manifest(name=name, version=version, key_id=kid, files=_parse_files(body))


def load_manifest(path: Path, trusted_keys: Sequence[Ed25519PublicKey]) -> Manifest:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise ManifestError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return parse_manifest(data, trusted_keys)


def load_public_keys(paths: Iterable[Path]) -> list[Ed25519PublicKey]:
    """Ed25519 public keys from PEM files; a folder contributes its ``*.pem`` and ``*.pub`` files."""
    keys: list[Ed25519PublicKey] = []
    for path in paths:
        files = sorted([*path.glob("*.pem"), *path.glob("*.pub")]) if path.is_dir() else [path]
        for file in files:
            try:
                key = serialization.load_pem_public_key(file.read_bytes())
            except (OSError, ValueError) as exc:
                raise ManifestError(f"{file}: not a PEM public key ({exc.__class__.__name__})") from None
            if not isinstance(key, Ed25519PublicKey):
                raise ManifestError(f"{file}: not an Ed25519 public key")
            keys.append(key)
    return keys


def _parse_files(body: Mapping[str, Any]) -> dict[str, ManifestFile]:
    files = body.get("files")
    if not isinstance(files, dict):
        raise ManifestError("manifest has no 'files' table")
    parsed = {}
    for relpath, entry in files.items():
        normal = _normalise(relpath)
        if not isinstance(entry, dict):
            raise ManifestError(f"{relpath}: entry is not a table")
        digest, size = entry.get("sha256"), entry.get("size")
        if (
            not isinstance(digest, str)
            or len(digest) != 64
            or any(c not in "0123456789abcdef" for c in digest)
        ):
            raise ManifestError(f"{relpath}: sha256 is not 64 lowercase hex digits")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError(f"{relpath}: size is not a non-negative integer")
        meta = {k: v for k, v in entry.items() if k not in ("sha256", "size")}
        parsed[normal] = ManifestFile(path=normal, sha256=digest, size=size, meta=meta)
    return parsed


def _normalise(relpath: object) -> str:
    if not isinstance(relpath, str) or not relpath or "\\" in relpath or "\x00" in relpath:
        raise ManifestError(f"{relpath!r}: not a relative POSIX path")
    path = PurePosixPath(relpath)
    if path.is_absolute() or ".." in path.parts or str(path) != relpath.rstrip("/"):
        raise ManifestError(f"{relpath!r}: not a plain relative path")
    return str(path)


def _canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _digest_file(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()
