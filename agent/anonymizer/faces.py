"""A second, cheap detector for people too close to the camera for the SSD: faces, grown into bodies.

Why: the OIDv4 SSD was trained on scenes. A person who fills most of the frame (leaning into the lens,
a portrait) is still localised but scored 0.1-0.25 "Person", under any threshold that keeps the SSD's
false positives down, while a face detector finds such a face at 0.7-0.9 (docs/privacy-evaluation.md).

The model is MediaPipe's BlazeFace full-range (192x192, one layer of 48x48 anchors, float I/O in [-1, 1];
outputs [1,N,16] box + 6 keypoints and [1,N,1] logits, told apart by shape). Decode as MediaPipe's
TensorsToDetectionsCalculator: offsets in input pixels from the anchor centre, fixed anchor size 1.

The frame is letterboxed, not squashed: a face keeps its proportions (the model was trained on square,
undistorted crops), and a box maps back to frame pixels by one scale per axis (`Letterbox`).

A face is not what has to be removed: the person is. Each face box grows into a head-and-body box by
fixed body proportions (`face_to_person`), clipped to the frame; the mask builder then dilates it like any
other box.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .detector import Detection, nms
from .runtime import ModelError, TfliteModel

FACE_LABEL = "Face"  # Detection.label of a person found through the face detector
FACE_CLASS_ID = -1  # not an index into the SSD's label map
_RAW_SCORE_LIMIT = 80.0  # MediaPipe clips logits so sigmoid stays finite in float32
_NMS_IOU = 0.3  # faces of two people overlap far less than two boxes of one face
_KEYPOINT_VALUES = 12  # 6 (x, y) keypoints after the 4 box values; unused here

# Body proportions in face-box units (the BlazeFace box spans roughly brows to chin and cheek to cheek):
# the skull and hair above it, shoulders and arms to the sides, and the classic eight-head figure below
# (one head for the face, seven for the body). Chosen from anatomy, not fitted to any evaluation image;
# a sitting or cut-off body is simply clipped by the frame.
HEAD_ABOVE = 0.6  # face heights above the face box
BODY_BELOW = 7.0  # face heights below the face box
BODY_WIDTH = 3.0  # face widths, centred on the face


def blazeface_anchors(input_size: int, strides: tuple[int, ...] = (4,), per_cell: int = 1) -> np.ndarray:
    """Anchor centres (N, 2) as x, y normalised: MediaPipe's SsdAnchorsCalculator with fixed anchor size.
    Full range: one layer of stride 4 (48x48 cells at 192 px), one anchor per cell."""
    centres = []
    for stride in strides:
        cells = input_size // stride
        for y in range(cells):
            for x in range(cells):
                centres.extend([((x + 0.5) / cells, (y + 0.5) / cells)] * per_cell)
    return np.array(centres, np.float32)


@dataclass(frozen=True, slots=True)
class Letterbox:
    """A frame scaled to fit a square input without distortion, at the top left, the rest black."""

    width: int  # the frame's
    height: int
    content_w: int  # the scaled frame inside the input
    content_h: int
    size: int  # the square input's side

    @classmethod
    def fit(cls, width: int, height: int, size: int) -> Letterbox:
        if width < 1 or height < 1 or size < 1:
            raise ValueError("letterbox sizes must be positive")
        scale = size / max(width, height)
        return cls(
            width,
            height,
            max(1, min(size, round(width * scale))),
            max(1, min(size, round(height * scale))),
            size,
        )

    def image(self, bgr: np.ndarray) -> np.ndarray:
        """The letterboxed copy (size x size x 3) of a frame of this geometry."""
        canvas = np.zeros((self.size, self.size, 3), np.uint8)
        resized = cv2.resize(bgr, (self.content_w, self.content_h), interpolation=cv2.INTER_AREA)
        canvas[: self.content_h, : self.content_w] = resized
        return canvas

    def to_frame(self, rects: np.ndarray) -> np.ndarray:
        """Rects (x, y, w, h) normalised to the input → frame pixels. Each axis has its own factor, so
        the content's far edge (content_w / size) maps exactly onto the frame's edge."""
        fx = self.size * self.width / self.content_w
        fy = self.size * self.height / self.content_h
        return np.asarray(rects, np.float64) * [fx, fy, fx, fy]


def face_to_person(face: tuple[int, int, int, int], width: int, height: int) -> tuple[int, int, int, int]:
    """The head-and-body box (x0, y0, x1, y1, x1/y1 exclusive) of a face box, clipped to the frame."""
    x0, y0, x1, y1 = face
    face_w, face_h = x1 - x0, y1 - y0
    centre = (x0 + x1) / 2
    return (
        max(0, math.floor(centre - face_w * BODY_WIDTH / 2)),
        max(0, math.floor(y0 - face_h * HEAD_ABOVE)),
        min(width, math.ceil(centre + face_w * BODY_WIDTH / 2)),
        min(height, math.ceil(y1 + face_h * BODY_BELOW)),
    )


class FaceDetector:
    def __init__(self, model: TfliteModel, *, threshold: float = 0.5) -> None:
        self.model, self.threshold = model, threshold
        if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4 or model.inputs[0].shape[3] != 3:
            raise ModelError(f"{model.name}: expected one [1,S,S,3] image input")
        _, self.input_h, self.input_w, _ = model.inputs[0].shape
        if self.input_h != self.input_w or self.input_w % 4:
            raise ModelError(
                f"{model.name}: expected a square input a multiple of 4, got {self.input_w}x{self.input_h}"
            )
        self.anchors = blazeface_anchors(self.input_w)
        shapes = [info.shape for info in model.outputs]
        n = len(self.anchors)
        boxes = [i for i, s in enumerate(shapes) if s == (1, n, 4 + _KEYPOINT_VALUES)]
        scores = [i for i, s in enumerate(shapes) if s == (1, n, 1)]
        if len(shapes) != 2 or len(boxes) != 1 or len(scores) != 1:
            raise ModelError(f"{model.name}: expected outputs [1,{n},16] and [1,{n},1], got {shapes}")
        self._box_out, self._score_out = boxes[0], scores[0]

    def detect(self, bgr: np.ndarray) -> list[Detection]:
        """One detection per face: label `Face`, score the face's, box the person grown from it."""
        height, width = bgr.shape[:2]
        letterbox = Letterbox.fit(width, height, self.input_w)
        rgb = cv2.cvtColor(letterbox.image(bgr), cv2.COLOR_BGR2RGB)
        tensor = (rgb.astype(np.float32) * np.float32(1 / 127.5) - np.float32(1.0))[np.newaxis]
        outputs = self.model.run(tensor)
        rects, scores = self._decode(outputs[self._box_out][0], outputs[self._score_out][0, :, 0])
        rects = letterbox.to_frame(rects)
        detections = []
        for i in nms(rects, scores, self.threshold, _NMS_IOU):
            x, y, w, h = rects[i]
            face = (math.floor(x), math.floor(y), math.ceil(x + w), math.ceil(y + h))
            box = face_to_person(face, width, height)
            if box[2] > box[0] and box[3] > box[1]:
                detections.append(Detection(FACE_LABEL, FACE_CLASS_ID, float(scores[i]), box))
        return detections

    def _decode(self, raw: np.ndarray, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Faces above the threshold: rects (x, y, w, h) normalised to the input, and their scores."""
        logits = np.clip(logits.astype(np.float64), -_RAW_SCORE_LIMIT, _RAW_SCORE_LIMIT)
        keep = np.flatnonzero(logits > math.log(self.threshold / (1.0 - self.threshold)))
        scores = 1.0 / (1.0 + np.exp(-logits[keep]))
        box = raw[keep, :4].astype(np.float64) / self.input_w
        xc = box[:, 0] + self.anchors[keep, 0]
        yc = box[:, 1] + self.anchors[keep, 1]
        w, h = box[:, 2], box[:, 3]
        rects = np.stack([xc - w / 2, yc - h / 2, w, h], axis=1)
        valid = np.isfinite(rects).all(axis=1) & (w > 0) & (h > 0) & (w <= 2) & (h <= 2)
        return rects[valid], scores[valid]
