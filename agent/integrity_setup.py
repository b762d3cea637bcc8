"""The `[integrity]` table: the agent checks the signed image manifest before it starts anything.

The image build hashes every file of the installed agent and of the models into a manifest signed with the
image release key (agent/security/manifest.py); the image ships only the public key. At start the agent
verifies the signature and every listed file, and, for the folders named in `complete`, that no unlisted
file was added (a dropped-in module would run as the agent). Any failure refuses the start: the caller
exits with EX_CONFIG (78), which the unit lists in RestartPreventExitStatus, so systemd does not retry a
start that cannot succeed. No [integrity] table: no check (a development checkout, `build.sh run`).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from pydantic import Field, field_validator

from .core.config import AgentConfig
from .core.config.schema_base import Strict
from .security.manifest import ManifestError, load_manifest, load_public_keys

log = logging.getLogger("agent.integrity")

SECTION = "integrity"
EX_CONFIG = 78  # sysexits.h: a configuration the agent must not run with
_MAX_PROBLEMS_SHOWN = 10


class IntegritySection(Strict):
    manifest: str  # the signed manifest (absolute path)
    trusted_keys: list[str] = Field(min_length=1, max_length=16)  # public key files or folders (absolute)
    root: str  # the folder the manifest's paths are relative to (absolute)
    name: str = Field(default="msec-image", min_length=1, max_length=64)  # the manifest must say this name
    # Folders under root (relative) that must hold exactly the listed files: nothing added.
    complete: list[str] = Field(default=[], max_length=64)

    @field_validator("manifest", "root")
    @classmethod
    def _absolute(cls, value: str) -> str:
        return _require_absolute(value)

    @field_validator("trusted_keys")
    @classmethod
    def _absolute_keys(cls, value: list[str]) -> list[str]:
        return [_require_absolute(v) for v in value]

    @field_validator("complete")
    @classmethod
    def _relative_inside(cls, value: list[str]) -> list[str]:
        for folder in value:
            path = PurePosixPath(folder)
            if not folder or path.is_absolute() or ".." in path.parts:
                raise ValueError("expected folders relative to root, without '..'")
        return value


def _require_absolute(value: str) -> str:
    if not value.startswith("/") or "\0" in value:
        raise ValueError("expected an absolute path")
    return value


class IntegrityError(Exception):
    """The image's files do not match its signed manifest: the agent must not start."""


@dataclass(frozen=True)
class IntegrityReport:
    name: str
    version: str
    files: int
    seconds: float


def check_integrity(config: AgentConfig) -> IntegrityReport | None:
    """Verifies the image manifest named by [integrity]; None without the table. Raises IntegrityError."""
    section = config.section(SECTION)
    if not isinstance(section, IntegritySection):
        return None
    started = time.monotonic()
    root = Path(section.root)
    try:
        keys = load_public_keys([Path(k) for k in section.trusted_keys])
        if not keys:
            raise ManifestError(f"no public key found in {', '.join(section.trusted_keys)}")
        manifest = load_manifest(Path(section.manifest), keys)
    except ManifestError as error:
        raise IntegrityError(f"image manifest not trusted: {error}") from None
    if manifest.name != section.name:
        raise IntegrityError(f"image manifest is for {manifest.name!r}, expected {section.name!r}")
    problems = manifest.verify_tree(root)
    listed = set(manifest.files)
    for folder in section.complete:
        problems += _unlisted(root, folder, listed)
    if problems:
        shown = "; ".join(problems[:_MAX_PROBLEMS_SHOWN])
        more = len(problems) - _MAX_PROBLEMS_SHOWN
        raise IntegrityError(
            f"{len(problems)} file(s) under {root} do not match the signed {manifest.name} "
            f"{manifest.version} manifest: {shown}" + (f" (and {more} more)" if more > 0 else "")
        )
    report = IntegrityReport(manifest.name, manifest.version, len(listed), time.monotonic() - started)
    log.info(
        "image files verified against the signed manifest",
        extra={
            "manifest": report.name,
            "version": report.version,
            "files": report.files,
            "ms": round(report.seconds * 1000),
        },
    )
    return report


def _unlisted(root: Path, folder: str, listed: set[str]) -> list[str]:
    """Files under root/folder that the manifest does not list (symlinks and special files included)."""
    base = root / folder
    if not base.is_dir():
        return [f"{folder}: missing (a folder the manifest must cover)"]
    found = []
    for directory, dirnames, filenames in os.walk(base, onerror=None, followlinks=False):
        for entry in sorted(filenames) + [d for d in dirnames if (Path(directory) / d).is_symlink()]:
            relpath = (Path(directory) / entry).relative_to(root).as_posix()
            if relpath not in listed:
                found.append(f"{relpath}: not in the manifest (added after signing)")
    return found
