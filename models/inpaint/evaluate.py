"""Held-out evaluation: hole PSNR/SSIM of the trained generator (PyTorch and TFLite) vs OpenCV Telea and NS.

Cases are fixed (seed 1234): S x S crops (S = 128 and 256) from the pack's ``eval/`` folder (the project's
evaluation-only sources; ``--split val`` uses the trainable hold-out instead, for choosing between models),
each with one rectangular hole of S/8..S/2 px per side. ``vtest`` crops are in-domain (same fixed camera as
training, unseen frames); ``photo`` crops are out-of-domain (darknet, face-api, human, messi...). Metrics are
PSNR and SSIM (skimage, 7 px window) over the hole, on the composited 8-bit RGB output, as the runtime
produces it: pred * mask + input * (1 - mask).

    python models/inpaint/evaluate.py --weights models/inpaint/glcic.pt \\
        --tflite fp16=models/inpaint/glcic_{size}.tflite --json models/inpaint/eval.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

HERE = Path(__file__).resolve().parent
SEED = 1234
Case = dict
Filler = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (RGB uint8 with hole, mask uint8 0/1) -> RGB uint8


def load_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"unreadable image {path}")
    return np.ascontiguousarray(bgr[..., ::-1])


def make_cases(folder: Path, count: int, size: int, seed: int) -> list[Case]:
    """``count`` fixed crops with one rectangular hole each, drawn from the JPEGs in ``folder``."""
    paths = sorted(folder.glob("*.jpg"))
    if not paths:
        raise FileNotFoundError(f"no images in {folder}; run prepare_data.py first")
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        path = paths[rng.integers(len(paths))]
        image = load_rgb(path)
        short = min(image.shape[:2])
        if short < size:  # a few small photos: upscale so an S x S crop fits
            image = cv2.resize(image, None, fx=size / short, fy=size / short, interpolation=cv2.INTER_CUBIC)
        top = int(rng.integers(image.shape[0] - size + 1))
        left = int(rng.integers(image.shape[1] - size + 1))
        crop = np.ascontiguousarray(image[top : top + size, left : left + size])
        h, w = (int(v) for v in rng.integers(size // 8, size // 2 + 1, size=2))
        y, x = int(rng.integers(size - h + 1)), int(rng.integers(size - w + 1))
        cases.append({"source": path.name, "image": crop, "hole": (y, x, h, w)})
    return cases


def hole_mask(size: int, hole: tuple[int, int, int, int]) -> np.ndarray:
    y, x, h, w = hole
    mask = np.zeros((size, size), np.uint8)
    mask[y : y + h, x : x + w] = 1
    return mask


def network_input(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The runtime contract: [1, S, S, 4] float32, RGB in [-1, 1] with the hole zeroed, then the mask."""
    rgb = image.astype(np.float32) / 127.5 - 1.0
    m = mask.astype(np.float32)[..., None]
    return np.concatenate([rgb * (1 - m), m], axis=-1)[None]


def composite(pred: np.ndarray, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    rgb = np.clip((pred + 1.0) * 127.5 + 0.5, 0, 255).astype(np.uint8)
    return np.where(mask[..., None] > 0, rgb, image)


def opencv_filler(flag: int) -> Filler:
    def fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        bgr = cv2.inpaint(np.ascontiguousarray(image[..., ::-1]), mask * 255, 5, flag)
        return bgr[..., ::-1]

    return fill


def torch_filler(weights: Path) -> Filler:
    import torch

    sys.path.insert(0, str(HERE))
    from model import load_generator

    generator = load_generator(str(weights))

    def fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(network_input(image, mask)).permute(0, 3, 1, 2)
        with torch.no_grad():
            pred = generator(x)[0].permute(1, 2, 0).numpy()
        return composite(pred, image, mask)

    return fill


def tflite_interpreter(path: Path, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    interpreter.allocate_tensors()
    return interpreter


def tflite_filler(path: Path, threads: int) -> Filler:
    interpreter = tflite_interpreter(path, threads)
    source = interpreter.get_input_details()[0]["index"]
    result = interpreter.get_output_details()[0]["index"]

    def fill(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(source, network_input(image, mask))
        interpreter.invoke()
        return composite(interpreter.get_tensor(result)[0], image, mask)

    return fill


def hole_scores(
    truth: np.ndarray, filled: np.ndarray, hole: tuple[int, int, int, int]
) -> tuple[float, float]:
    y, x, h, w = hole
    a, b = truth[y : y + h, x : x + w], filled[y : y + h, x : x + w]
    psnr = peak_signal_noise_ratio(a, b, data_range=255)
    ssim = structural_similarity(a, b, win_size=7, channel_axis=-1, data_range=255)
    return min(float(psnr), 100.0), float(ssim)  # an exact fill would be +inf dB


def score(fill: Filler, cases: list[Case]) -> list[tuple[float, float]]:
    size = cases[0]["image"].shape[0]
    scores = []
    for case in cases:
        mask = hole_mask(size, case["hole"])
        holed = case["image"] * (1 - mask[..., None])
        scores.append(hole_scores(case["image"], fill(holed, mask), case["hole"]))
    return scores


def summarize(scores: list[tuple[float, float]], telea: list[tuple[float, float]] | None) -> dict:
    row = {
        "psnr": round(statistics.fmean(s[0] for s in scores), 2),
        "ssim": round(statistics.fmean(s[1] for s in scores), 4),
        "n": len(scores),
    }
    if telea is not None:
        row["beats_telea_psnr"] = sum(s[0] > t[0] for s, t in zip(scores, telea, strict=True))
        row["beats_telea_ssim"] = sum(s[1] > t[1] for s, t in zip(scores, telea, strict=True))
    return row


def time_tflite(path: Path, threads: int, repeats: int) -> float:
    interpreter = tflite_interpreter(path, threads)
    detail = interpreter.get_input_details()[0]
    interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], np.float32))
    interpreter.invoke()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 2)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", choices=("eval", "val"), default="eval")
    parser.add_argument("--pack", type=Path, default=HERE / ".work")
    parser.add_argument("--weights", type=Path, action="append", default=[], help="PyTorch state dict(s)")
    parser.add_argument(
        "--tflite", action="append", default=[], help="NAME=PATH, PATH may contain {size} (128 and 256)"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--count", type=int, default=48, help="crops per domain at 128 (half that at 256)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20, help="timed invokes per TFLite file")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    methods: dict[str, Callable[[int], Filler]] = {
        "opencv_telea_r5": lambda _s: opencv_filler(cv2.INPAINT_TELEA),
        "opencv_ns_r5": lambda _s: opencv_filler(cv2.INPAINT_NS),
    }
    for weights in args.weights:
        methods[f"torch:{weights.stem}"] = lambda _s, w=weights: torch_filler(w)
    tflite_paths = {}
    for spec in args.tflite:
        name, _, pattern = spec.partition("=")
        tflite_paths[name] = pattern
        methods[f"tflite:{name}"] = lambda s, p=pattern: tflite_filler(Path(p.format(size=s)), args.threads)

    results: dict = {"split": args.split, "seed": SEED, "metric": "hole PSNR dB / SSIM (win 7), 8-bit RGB"}
    for size in args.sizes:
        count = args.count if size == 128 else args.count // 2
        domains = {
            domain: make_cases(args.pack / args.split / domain, count, size, SEED + size + i)
            for i, domain in enumerate(("vtest", "photo"))
        }
        raw = {}
        for method, factory in methods.items():
            fill = factory(size)
            raw[method] = {domain: score(fill, cases) for domain, cases in domains.items()}
        table = {}
        for method, per_domain in raw.items():
            telea = raw["opencv_telea_r5"] if method != "opencv_telea_r5" else None
            row = {d: summarize(s, telea[d] if telea else None) for d, s in per_domain.items()}
            row["all"] = summarize(
                per_domain["vtest"] + per_domain["photo"],
                telea["vtest"] + telea["photo"] if telea else None,
            )
            table[method] = row
            print(
                f"{size} {method:28s} "
                + "  ".join(f"{d} {r['psnr']:.2f}/{r['ssim']:.3f}" for d, r in row.items())
            )
        results[f"size_{size}"] = table
        for name, pattern in tflite_paths.items():
            ms = time_tflite(Path(pattern.format(size=size)), args.threads, args.repeats)
            results.setdefault("tflite_ms_per_fill", {}).setdefault(name, {})[str(size)] = ms
            print(f"{size} tflite:{name} {ms} ms per fill ({args.threads} threads, median of {args.repeats})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
