"""The anonymizer's model files, read only through the signed manifest.

Every byte a model is loaded from is a byte the manifest verified (`verify_file` returns them). A missing,
altered or unsigned detector (or face detector, when `face_detection` is on) makes the anonymizer
unavailable: no detector, no frames out. A learned
inpainting model that fails the check is not loaded either; the pipeline falls back to Telea and says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..security.manifest import ManifestError, load_manifest, load_public_keys
from .config import AnonymizerSection

log = logging.getLogger("agent.anonymizer")


class AnonymizerUnavailable(Exception):
    """The anonymizer cannot run (model missing, tampered, unsigned or unloadable): frames are dropped."""


@dataclass(frozen=True, slots=True)
class VerifiedModels:
    manifest_version: str
    detector: bytes
    labels: bytes
    inpaint: bytes | None  # None: not configured, or it failed verification (see inpaint_problem)
    inpaint_problem: str | None = None
    face: bytes | None = None  # None: face_detection is off


def _key_paths(section: AnonymizerSection, root: Path) -> list[Path]:
    return [Path(p) if p.startswith("/") else root / p for p in section.trusted_keys]


def verify_models(section: AnonymizerSection) -> VerifiedModels:
    root = Path(section.models_dir)
    try:
        keys = load_public_keys(_key_paths(section, root))
        if not keys:
            raise ManifestError("no trusted keys found")
        manifest = load_manifest(root / section.manifest, keys)
        detector = manifest.verify_file(root, section.detector)
        labels = manifest.verify_file(root, section.labels)
    except ManifestError as error:
        raise AnonymizerUnavailable(f"detector refused: {error}") from None
    face = None
    if section.face_detection:
        # Fail-closed like the detector: running without the configured face pass would silently expose
        # the close-up people it exists for.
        try:
            face = manifest.verify_file(root, section.face_model)
        except ManifestError as error:
            raise AnonymizerUnavailable(f"face detector refused: {error}") from None
    inpaint, problem = None, None
    if section.inpaint == "learned":
        try:
            inpaint = manifest.verify_file(root, section.inpaint_model)
        except ManifestError as error:
            problem = f"learned inpainting refused ({error}); using Telea"
            log.warning("%s", problem)
    return VerifiedModels(manifest.version, detector, labels, inpaint, problem, face)
