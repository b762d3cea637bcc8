"""The anonymizer: detect → mask (dilated, held over frames) → inpaint. Pixels in, pixels out.

`Anonymizer.process(frame_bgr)` is stateful across consecutive frames of one stream (the hold-over);
`reset()` forgets that history (a new stream, or each still image). One instance per stream: it owns its
interpreters, so streams never wait on each other. `AnonymizerFactory.create()` verifies the models
against the manifest and builds a fresh instance, or raises `AnonymizerUnavailable`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import AnonymizerSection
from .detector import Detection, SsdDetector, read_labels
from .faces import FaceDetector
from .inpaint import FallbackInpainter, Inpainter, LearnedInpainter, SolidFill, TeleaInpainter
from .mask import MaskBuilder
from .models import AnonymizerUnavailable, verify_models
from .runtime import ModelError, TfliteModel

MAX_SIDE = 8192  # a frame beyond this is not a camera frame


@dataclass(frozen=True, slots=True, eq=False)
class AnonymizedFrame:
    image: np.ndarray = field(repr=False)  # BGR uint8, every masked pixel replaced
    mask: np.ndarray = field(repr=False)  # bool H x W, True where pixels were replaced
    detections: tuple[Detection, ...]
    timings: Mapping[str, float]  # seconds per stage: detect, mask, inpaint
    inpainter: str  # the backend that filled this frame

    @property
    def masked_ratio(self) -> float:
        return float(self.mask.mean()) if self.mask.size else 0.0


def check_frame(frame: Any) -> np.ndarray:
    if (
        not isinstance(frame, np.ndarray)
        or frame.dtype != np.uint8
        or frame.ndim != 3
        or frame.shape[2] != 3
        or not (1 <= frame.shape[0] <= MAX_SIDE and 1 <= frame.shape[1] <= MAX_SIDE)
    ):
        raise ValueError(f"expected a BGR uint8 H x W x 3 image of at most {MAX_SIDE} pixels a side")
    return frame


class Anonymizer:
    def __init__(
        self,
        detector: SsdDetector,
        inpainter: Inpainter,
        masks: MaskBuilder,
        faces: FaceDetector | None = None,
    ) -> None:
        self.detector, self.inpainter, self.masks, self.faces = detector, inpainter, masks, faces

    def detect(self, frame: np.ndarray) -> list[Detection]:
        """The SSD's boxes, then the person boxes grown from faces (close-ups the SSD scores too low)."""
        detections = self.detector.detect(frame)
        if self.faces is not None:
            detections.extend(self.faces.detect(frame))
        return detections

    def process(self, frame_bgr: np.ndarray) -> AnonymizedFrame:
        frame = check_frame(frame_bgr)
        start = time.perf_counter()
        detections = self.detect(frame)
        detected = time.perf_counter()
        mask = self.masks.build(frame.shape[:2], (d.box for d in detections))
        masked = time.perf_counter()
        image = self.inpainter.fill(frame, mask) if mask.any() else frame.copy()
        done = time.perf_counter()
        used = getattr(self.inpainter, "last_used", self.inpainter.name) if mask.any() else "none"
        timings = {"detect": detected - start, "mask": masked - detected, "inpaint": done - masked}
        return AnonymizedFrame(image, mask, tuple(detections), timings, used)

    def reset(self) -> None:
        self.masks.reset()


class AnonymizerFactory:
    """Builds anonymizers from the `[anonymizer]` table, verifying the models each time."""

    def __init__(self, section: AnonymizerSection) -> None:
        self.section = section
        self.problem: str | None = None  # why the last create() failed, or what it fell back from
        self.manifest_version: str | None = None

    def create(self) -> Anonymizer:
        section = self.section
        try:
            models = verify_models(section)
            detector = SsdDetector(
                TfliteModel(models.detector, threads=section.threads, name=section.detector),
                read_labels(models.labels),
                section.classes,
                threshold=section.score_threshold,
                iou=section.nms_iou,
                tiling=section.tiling,
            )
            faces = None
            if models.face is not None:
                face_model = TfliteModel(models.face, threads=section.threads, name=section.face_model)
                faces = FaceDetector(face_model, threshold=section.face_threshold)
        except AnonymizerUnavailable as error:
            self.problem = str(error)
            raise
        except ModelError as error:
            self.problem = f"detector unusable: {error}"  # the SSD's or the face detector's
            raise AnonymizerUnavailable(self.problem) from None
        backends: list[Inpainter] = []
        self.problem = models.inpaint_problem
        if models.inpaint is not None:
            try:
                model = TfliteModel(models.inpaint, threads=section.threads, name=section.inpaint_model)
                rest = TeleaInpainter() if section.inpaint == "learned" else SolidFill()
                backends.append(LearnedInpainter(model, budget=section.inpaint_budget_ms / 1000, rest=rest))
            except ModelError as error:
                self.problem = f"learned inpainting unusable ({error}); using Telea"
        if section.inpaint in ("learned", "telea"):
            backends.append(TeleaInpainter())
        backends.append(SolidFill())
        self.manifest_version = models.manifest_version
        masks = MaskBuilder(
            ratio=section.dilation, pixels=section.dilation_px, hold_frames=section.hold_frames
        )
        return Anonymizer(detector, FallbackInpainter(backends), masks, faces)


def build_anonymizer(section: AnonymizerSection) -> Anonymizer:
    """The factory the evaluation uses: one anonymizer from the `[anonymizer]` table."""
    return AnonymizerFactory(section).create()
