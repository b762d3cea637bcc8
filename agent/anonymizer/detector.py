"""The SSD detector: MediaPipe's OIDv4 SSD-MobileNetV2 (fp16 original or its full-int8 conversion).

Raw outputs are decoded here (../shared/reference/models.md, Appendix A): box encodings [1,N,4] as
(ty, tx, th, tw) against SSD anchors with scales (10, 10, 5, 5), class logits [1,N,C] through a sigmoid,
class 0 the background. A box's score is its best score among the classes we remove (a "Laptop" that is
also 0.45 "Person" is masked), then one class-agnostic NMS: for masking, overlapping boxes are merged anyway.

Small, distant people: with `tiling` the frame is also cut into overlapping tiles, each run at the
detector's full input size (a second, larger scale), and the boxes of every pass are merged by NMS.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .runtime import ModelError, TfliteModel

BOX_SCALES = (10.0, 10.0, 5.0, 5.0)
_MAX_LOG_SCALE = 10.0  # exp() argument bound: a hostile or broken model must not overflow to inf
_TILES = {"off": (1, 1), "2x1": (2, 1), "2x2": (2, 2)}
_TILE_OVERLAP = 0.2  # of the tile size: a person cut by a tile border is still whole in one of them


@dataclass(frozen=True, slots=True)
class Detection:
    label: str
    class_id: int
    score: float
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in frame pixels, clipped, x1/y1 exclusive


def ssd_anchors(input_size: int = 300) -> np.ndarray:
    """MediaPipe's SsdAnchorsCalculator (6 layers, scales 0.2..0.95): (N, 4) as xc, yc, w, h normalised."""
    strides = [16, 32, 64, 128, 256, 512]
    ratios = [1.0, 2.0, 0.5, 3.0, 1.0 / 3.0]

    def scale(layer: int) -> float:
        return 0.2 + (0.95 - 0.2) * layer / (len(strides) - 1)

    anchors = []
    for layer, stride in enumerate(strides):
        if layer == 0:
            layer_ratios, scales = [1.0, 2.0, 0.5], [0.1, scale(0), scale(0)]
        else:
            layer_ratios, scales = list(ratios), [scale(layer)] * len(ratios)
            following = 1.0 if layer == len(strides) - 1 else scale(layer + 1)
            layer_ratios.append(1.0)
            scales.append(math.sqrt(scale(layer) * following))
        size = math.ceil(input_size / stride)
        for y in range(size):
            for x in range(size):
                for ratio, s in zip(layer_ratios, scales, strict=True):
                    r = math.sqrt(ratio)
                    anchors.append(((x + 0.5) / size, (y + 0.5) / size, s * r, s / r))
    return np.array(anchors, np.float32)


def decode(
    raw_boxes: np.ndarray,
    logits: np.ndarray,
    anchors: np.ndarray,
    wanted: np.ndarray,
    threshold: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidates above `threshold` among the `wanted` classes: normalised rects (x, y, w, h), scores,
    class ids. Only candidates pay for the sigmoid and the box arithmetic."""
    wanted_ids = np.flatnonzero(wanted)
    best = logits[:, wanted_ids]
    arg = best.argmax(axis=1)
    best_logit = best[np.arange(len(best)), arg]
    # sigmoid(x) > t  <=>  x > logit(t): compare logits, no exp over every anchor.
    keep = np.flatnonzero(best_logit > math.log(threshold / (1.0 - threshold)))
    scores = 1.0 / (1.0 + np.exp(-best_logit[keep].astype(np.float64)))
    box, anchor = raw_boxes[keep].astype(np.float64), anchors[keep].astype(np.float64)
    yc = box[:, 0] / BOX_SCALES[0] * anchor[:, 3] + anchor[:, 1]
    xc = box[:, 1] / BOX_SCALES[1] * anchor[:, 2] + anchor[:, 0]
    h = np.exp(np.clip(box[:, 2] / BOX_SCALES[2], -_MAX_LOG_SCALE, _MAX_LOG_SCALE)) * anchor[:, 3]
    w = np.exp(np.clip(box[:, 3] / BOX_SCALES[3], -_MAX_LOG_SCALE, _MAX_LOG_SCALE)) * anchor[:, 2]
    rects = np.stack([xc - w / 2, yc - h / 2, w, h], axis=1)
    finite = np.isfinite(rects).all(axis=1) & np.isfinite(scores)
    return rects[finite], scores[finite], wanted_ids[arg[keep]][finite]


def nms(rects: np.ndarray, scores: np.ndarray, threshold: float, iou: float) -> np.ndarray:
    """Indices kept by non-maximum suppression (pixel rects x, y, w, h), best score first."""
    if len(rects) == 0:
        return np.zeros(0, np.int64)
    keep = cv2.dnn.NMSBoxes(rects.tolist(), scores.tolist(), threshold, iou)
    return np.array(keep, np.int64).reshape(-1)


def tile_regions(width: int, height: int, tiling: str) -> list[tuple[int, int, int, int]]:
    """The full frame, then the overlapping tiles (x0, y0, x1, y1) of the tiling."""
    cols, rows = _TILES[tiling]
    regions = [(0, 0, width, height)]
    if cols * rows == 1:
        return regions
    tile_w = math.ceil(width / (cols - (cols - 1) * _TILE_OVERLAP))
    tile_h = math.ceil(height / (rows - (rows - 1) * _TILE_OVERLAP))
    for row in range(rows):
        for col in range(cols):
            x0 = 0 if cols == 1 else round(col * (width - tile_w) / (cols - 1))
            y0 = 0 if rows == 1 else round(row * (height - tile_h) / (rows - 1))
            regions.append((x0, y0, min(x0 + tile_w, width), min(y0 + tile_h, height)))
    return regions


class SsdDetector:
    def __init__(
        self,
        model: TfliteModel,
        labels: Sequence[str],
        classes: Sequence[str],
        *,
        threshold: float = 0.3,
        iou: float = 0.45,
        tiling: str = "off",
    ) -> None:
        self.model, self.labels = model, list(labels)
        self.threshold, self.iou, self.tiling = threshold, iou, tiling
        if len(model.inputs) != 1 or len(model.inputs[0].shape) != 4 or model.inputs[0].shape[3] != 3:
            raise ModelError(f"{model.name}: expected one [1,H,W,3] image input")
        _, self.input_h, self.input_w, _ = model.inputs[0].shape
        if self.input_h != self.input_w:
            raise ModelError(f"{model.name}: expected a square input, got {self.input_w}x{self.input_h}")
        self.anchors = ssd_anchors(self.input_w)
        self._box_out, self._class_out = self._outputs(model, len(self.anchors), len(self.labels))
        unknown = sorted(set(classes) - set(self.labels))
        if unknown:
            raise ModelError(f"{model.name}: classes not in the label map: {', '.join(unknown)}")
        self.wanted = np.array([label in set(classes) and i > 0 for i, label in enumerate(self.labels)])

    @staticmethod
    def _outputs(model: TfliteModel, anchors: int, classes: int) -> tuple[int, int]:
        shapes = [info.shape for info in model.outputs]
        box = [i for i, s in enumerate(shapes) if s == (1, anchors, 4)]
        cls = [i for i, s in enumerate(shapes) if s == (1, anchors, classes)]
        if len(shapes) != 2 or len(box) != 1 or len(cls) != 1 or box == cls:
            raise ModelError(
                f"{model.name}: expected outputs [1,{anchors},4] and [1,{anchors},{classes}], got {shapes}"
            )
        return box[0], cls[0]

    def detect(self, bgr: np.ndarray) -> list[Detection]:
        height, width = bgr.shape[:2]
        all_rects, all_scores, all_classes = [], [], []
        for x0, y0, x1, y1 in tile_regions(width, height, self.tiling):
            rects, scores, classes = self._detect_region(bgr[y0:y1, x0:x1])
            rw, rh = x1 - x0, y1 - y0
            all_rects.append(rects * [rw, rh, rw, rh] + [x0, y0, 0, 0])
            all_scores.append(scores)
            all_classes.append(classes)
        rects, scores = np.concatenate(all_rects), np.concatenate(all_scores)
        classes = np.concatenate(all_classes)
        detections = []
        for i in nms(rects, scores, self.threshold, self.iou):
            x, y, w, h = rects[i]
            box = (
                int(np.clip(math.floor(x), 0, width)),
                int(np.clip(math.floor(y), 0, height)),
                int(np.clip(math.ceil(x + w), 0, width)),
                int(np.clip(math.ceil(y + h), 0, height)),
            )
            if box[2] > box[0] and box[3] > box[1]:
                class_id = int(classes[i])
                detections.append(Detection(self.labels[class_id], class_id, float(scores[i]), box))
        return detections

    def _detect_region(self, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        resized = cv2.resize(bgr, (self.input_w, self.input_h), interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
        tensor = (rgb.astype(np.float32) * np.float32(1 / 127.5) - np.float32(1.0))[np.newaxis]
        outputs = self.model.run(tensor)
        raw_boxes, logits = outputs[self._box_out][0], outputs[self._class_out][0]
        return decode(raw_boxes, logits, self.anchors, self.wanted, self.threshold)


def read_labels(data: bytes) -> list[str]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ModelError("label map is not UTF-8 text") from None
    labels = [line.strip() for line in text.splitlines()]
    while labels and not labels[-1]:
        labels.pop()
    if len(labels) < 2:
        raise ModelError("label map has fewer than two labels")
    return labels
