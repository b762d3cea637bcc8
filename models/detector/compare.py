"""Check the int8 SSD against the fp16 original it was made from: same detections, and how much faster.

Runs both models with the device runtime (ai-edge-litert, num_threads=2) on the held-out `[agreement]`
images of calibration.list (never calibrated on, never evaluation data), decodes both the same way, and
matches detections by class and IoU. Prints a JSON report (what models/README.md quotes).

    python compare.py <fp16.tflite> <int8.tflite> calibration.list <root> [--threshold 0.4]

The decode below is the reference one (shared/reference/models.md, Appendix A), kept here only so this
build-time check does not depend on the agent; the agent has its own in agent/anonymizer/.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter
from images import iter_images, model_input, read_list

NMS_IOU = 0.45
MATCH_IOU = 0.5
THREADS = 2


def ssd_anchors() -> np.ndarray:
    """(1917, 4) anchors as (x centre, y centre, w, h): MediaPipe's SsdAnchorsCalculator for objectron."""
    strides = [16, 32, 64, 128, 256, 512]
    ratios = [1.0, 2.0, 0.5, 3.0, 1 / 3]

    def scale(i: int) -> float:
        return 0.2 + (0.95 - 0.2) * i / 5

    out = []
    for layer, stride in enumerate(strides):
        if layer == 0:
            layer_ratios, scales = [1.0, 2.0, 0.5], [0.1, scale(0), scale(0)]
        else:
            layer_ratios, scales = list(ratios), [scale(layer)] * 5
            layer_ratios.append(1.0)
            scales.append(math.sqrt(scale(layer) * (1.0 if layer == 5 else scale(layer + 1))))
        side = math.ceil(300 / stride)
        for y in range(side):
            for x in range(side):
                for ratio, s in zip(layer_ratios, scales, strict=True):
                    root = math.sqrt(ratio)
                    out.append(((x + 0.5) / side, (y + 0.5) / side, s * root, s / root))
    return np.array(out, np.float32)


ANCHORS = ssd_anchors()


def decode(boxes: np.ndarray, logits: np.ndarray, threshold: float) -> list[tuple[int, float, np.ndarray]]:
    """(class, score, [x1, y1, x2, y2] normalised) after sigmoid, threshold and per-model NMS."""
    a = ANCHORS
    yc = boxes[:, 0] / 10 * a[:, 3] + a[:, 1]
    xc = boxes[:, 1] / 10 * a[:, 2] + a[:, 0]
    h = np.exp(boxes[:, 2] / 5) * a[:, 3]
    w = np.exp(boxes[:, 3] / 5) * a[:, 2]
    scores = 1 / (1 + np.exp(-logits))
    scores[:, 0] = 0  # class 0 is "???" (background)
    classes, best = scores.argmax(1), scores.max(1)
    keep = np.where(best > threshold)[0]
    if len(keep) == 0:
        return []
    rects = [[float(xc[i] - w[i] / 2), float(yc[i] - h[i] / 2), float(w[i]), float(h[i])] for i in keep]
    chosen = np.array(cv2.dnn.NMSBoxes(rects, [float(best[i]) for i in keep], threshold, NMS_IOU)).flatten()
    return [
        (
            int(classes[keep[j]]),
            float(best[keep[j]]),
            np.array([*rects[j][:2], rects[j][0] + rects[j][2], rects[j][1] + rects[j][3]]),
        )
        for j in chosen
    ]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class Model:
    """One .tflite model with float-in/float-out semantics, whatever its tensor types."""

    def __init__(self, path: Path) -> None:
        self.interpreter = Interpreter(model_path=str(path), num_threads=THREADS)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        outputs = self.interpreter.get_output_details()
        # Outputs are told apart by shape (the last axis: 4 box coordinates, 24 classes), never by order.
        self.box_output = next(o for o in outputs if o["shape"][-1] == 4)
        self.class_output = next(o for o in outputs if o["shape"][-1] != 4)

    def feed(self, normalised: np.ndarray) -> None:
        if self.input["dtype"] == np.int8:
            scale, zero = self.input["quantization"]
            quantised = np.clip(np.round(normalised / scale + zero), -128, 127).astype(np.int8)
            self.interpreter.set_tensor(self.input["index"], quantised[None])
        else:
            self.interpreter.set_tensor(self.input["index"], normalised[None].astype(np.float32))

    def fetch(self, detail: dict) -> np.ndarray:
        raw = self.interpreter.get_tensor(detail["index"])[0]
        if detail["dtype"] == np.int8:
            scale, zero = detail["quantization"]
            return (raw.astype(np.float32) - zero) * scale
        return raw.astype(np.float32)

    def run(self, normalised: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.feed(normalised)
        self.interpreter.invoke()
        return self.fetch(self.box_output), self.fetch(self.class_output)

    def time_invokes(self, invokes: int) -> float:
        start = time.perf_counter()
        for _ in range(invokes):
            self.interpreter.invoke()
        return (time.perf_counter() - start) / invokes * 1000


def time_both(fp16: Model, int8: Model, normalised: np.ndarray, rounds: int = 7, invokes: int = 20) -> dict:
    """ms/frame of each model's invoke, rounds alternating fp16 / int8 so that load from other processes hits
    both alike; best and median round, and the ratio of each (the number to quote on a shared machine)."""
    for model in (fp16, int8):
        model.feed(normalised)
        model.interpreter.invoke()  # warm-up: XNNPACK packs weights on the first call
    rounds_ms: dict[str, list[float]] = {"fp16": [], "int8": []}
    for _ in range(rounds):
        rounds_ms["fp16"].append(fp16.time_invokes(invokes))
        rounds_ms["int8"].append(int8.time_invokes(invokes))
    best = {name: min(values) for name, values in rounds_ms.items()}
    median = {name: statistics.median(values) for name, values in rounds_ms.items()}
    return {
        "fp16_ms_per_frame_best": round(best["fp16"], 2),
        "int8_ms_per_frame_best": round(best["int8"], 2),
        "speedup_int8_vs_fp16_best": round(best["fp16"] / best["int8"], 2),
        "speedup_int8_vs_fp16_median": round(median["fp16"] / median["int8"], 2),
        "timing_rounds": rounds,
        "invokes_per_round": invokes,
    }


def match(reference: list, candidate: list) -> list[tuple[float, float]]:
    """Greedy one-to-one matching, strongest reference first: (IoU, |score difference|) per matched pair."""
    free = list(range(len(candidate)))
    pairs = []
    for cls, score, box in sorted(reference, key=lambda d: -d[1]):
        best = max(
            (j for j in free if candidate[j][0] == cls), key=lambda j: iou(box, candidate[j][2]), default=None
        )
        if best is not None and iou(box, candidate[best][2]) >= MATCH_IOU:
            free.remove(best)
            pairs.append((iou(box, candidate[best][2]), abs(score - candidate[best][1])))
    return pairs


def compare(fp16: Model, int8: Model, images: list, threshold: float, margin: float) -> dict:
    fp16_total = int8_total = matched = confident = confident_found = 0
    pairs: list[tuple[float, float]] = []
    corr, per_image = [], []
    for source, rgb in images:
        x = model_input(rgb)
        reference, candidate = fp16.run(x), int8.run(x)
        corr.append(float(np.corrcoef(reference[1].ravel(), candidate[1].ravel())[0, 1]))
        ref_dets, cand_dets = decode(*reference, threshold), decode(*candidate, threshold)
        found = match(ref_dets, cand_dets)
        fp16_total, int8_total, matched = (
            fp16_total + len(ref_dets),
            int8_total + len(cand_dets),
            matched + len(found),
        )
        pairs += found
        # A detection near the threshold can fall either side of it after quantisation; what must not happen
        # is a clear fp16 detection (>= threshold + margin) that int8 misses even at threshold - margin.
        clear = decode(*reference, threshold + margin)
        confident += len(clear)
        confident_found += len(match(clear, decode(*candidate, threshold - margin)))
        per_image.append(
            {"image": source.describe(), "fp16": len(ref_dets), "int8": len(cand_dets), "matched": len(found)}
        )
    ious, diffs = [p[0] for p in pairs], [p[1] for p in pairs]
    return {
        "threshold": threshold,
        "images": len(images),
        "fp16_detections": fp16_total,
        "int8_detections": int8_total,
        "matched": matched,
        "recall_of_fp16": matched / fp16_total if fp16_total else None,
        "precision_vs_fp16": matched / int8_total if int8_total else None,
        "margin": margin,
        "clear_fp16_detections": confident,
        "clear_recall": confident_found / confident if confident else None,
        "mean_iou": statistics.fmean(ious) if ious else None,
        "min_iou": min(ious) if ious else None,
        "mean_abs_score_diff": statistics.fmean(diffs) if diffs else None,
        "max_abs_score_diff": max(diffs) if diffs else None,
        "class_logit_correlation_mean": statistics.fmean(corr),
        "class_logit_correlation_min": min(corr),
        **time_both(fp16, int8, model_input(images[0][1])),
        "num_threads": THREADS,
        "per_image": per_image,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fp16", type=Path)
    parser.add_argument("int8", type=Path)
    parser.add_argument("list", type=Path)
    parser.add_argument("root", type=Path)
    parser.add_argument("--threshold", type=float, default=0.4)
    parser.add_argument("--margin", type=float, default=0.05)
    parser.add_argument("--section", default="agreement")
    parser.add_argument("--min-clear-recall", type=float, default=0.95, help="fail the build below this")
    args = parser.parse_args(argv[1:])
    images = list(iter_images(args.root, read_list(args.list)[args.section]))
    report = compare(Model(args.fp16), Model(args.int8), images, args.threshold, args.margin)
    print(json.dumps(report, indent=2))
    if report["clear_recall"] is None or report["clear_recall"] < args.min_clear_recall:
        print(f"compare: int8 lost clear fp16 detections (recall {report['clear_recall']})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
