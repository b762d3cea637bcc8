"""`msec-agent eval`: run the real anonymizer over the labeled evaluation set and report privacy metrics.

Stills are independent (the anonymizer is reset before each, as the `/image` API does); the video segment
is played through once in order, so hold-over across frames is part of what is measured. Prints a summary
and writes the whole report (per class and size, per track, per image) as JSON. Only metrics are written:
the evaluation images are packaged test photos, and no frame, anonymized or not, is saved.

Exit codes: 0 evaluated (whether or not the goal is met: see `goal.met` in the report, or pass
--require-goal), 1 the labels, a file or the anonymizer could not be used, 2 usage, 3 goal not met with
--require-goal.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..core.config import ConfigError
from .config import AnonymizerSection, load_section
from .eval_labels import EvaluationSet, LabeledImage, LabeledVideo, LabelsError, load_labels
from .evaluation import (
    GOAL_SIZE,
    EvaluationError,
    Judgement,
    OverMasking,
    check_mask,
    frame_leak_rate,
    judge,
    over_masking,
    recall_table,
    track_exposures,
    track_leak_rate,
)
from .models import AnonymizerUnavailable

DEFAULT_LABELS = Path("eval/labels.json")
DEFAULT_OUT = Path("out/eval/privacy.json")
DEFAULT_INPAINT_REPORT = Path("models/inpaint/eval.json")
DEFAULT_MODELS = Path("models")
GOAL_RECALL = 0.95
GOAL_TRACK_LEAK = 0.02


class FrameResult(Protocol):
    image: np.ndarray
    mask: np.ndarray


class FrameAnonymizer(Protocol):
    """What the evaluation needs of `agent.anonymizer.pipeline.Anonymizer`."""

    def process(self, frame_bgr: np.ndarray) -> FrameResult: ...

    def reset(self) -> None: ...


class EvalError(Exception):
    """The evaluation cannot run (an unreadable file, a frame count that does not match the labels, an
    anonymizer that returns a mask of the wrong shape)."""


@dataclass
class _Timer:
    frames: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, float | int | None]:
        mean_ms = 1000 * self.seconds / self.frames if self.frames else None
        return {"frames": self.frames, "mean_ms": mean_ms}


def _mask_of(anonymizer: FrameAnonymizer, frame: np.ndarray, timer: _Timer) -> np.ndarray:
    start = time.perf_counter()
    result = anonymizer.process(frame)
    timer.seconds += time.perf_counter() - start
    timer.frames += 1
    try:
        check_mask(result.mask, frame.shape[:2])
    except EvaluationError as error:
        raise EvalError(f"the anonymizer's mask: {error}") from None
    if result.image.shape != frame.shape:
        raise EvalError(f"the anonymizer changed the frame shape {frame.shape} to {result.image.shape}")
    return result.mask


def _read_image(entry: LabeledImage) -> np.ndarray:
    import cv2

    frame = cv2.imread(str(entry.file), cv2.IMREAD_COLOR)
    if frame is None:
        raise EvalError(f"{entry.file.name}: cannot decode the image")
    if frame.shape[:2] != (entry.height, entry.width):
        raise EvalError(
            f"{entry.file.name}: is {frame.shape[1]}x{frame.shape[0]},"
            f" labels say {entry.width}x{entry.height}"
        )
    return frame


def _read_video(video: LabeledVideo) -> Iterator[np.ndarray]:
    import cv2

    capture = cv2.VideoCapture(str(video.file))
    if not capture.isOpened():
        raise EvalError(f"{video.file.name}: cannot open the video")
    try:
        count = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            if frame.shape[:2] != (video.height, video.width):
                raise EvalError(f"{video.file.name}: frame {count} is {frame.shape[1]}x{frame.shape[0]}")
            count += 1
            if count > len(video.frames):
                break
            yield frame
    finally:
        capture.release()
    if count != len(video.frames):
        raise EvalError(f"{video.file.name}: {count} frame(s) decoded, labels have {len(video.frames)}")


def _coverage_row(j: Judgement) -> dict[str, Any]:
    return {
        "box": list(j.instance.box),
        "class": j.instance.cls,
        "height_px": j.height_px,
        "coverage": round(j.coverage, 4),
    }


def evaluate_images(anonymizer: FrameAnonymizer, images: tuple[LabeledImage, ...]) -> dict[str, Any]:
    timer = _Timer()
    judgements: list[Judgement] = []
    overmask, negatives = OverMasking(0, 0), OverMasking(0, 0)
    per_image = []
    for entry in images:
        anonymizer.reset()  # stills are independent: no hold-over from the previous photo
        mask = _mask_of(anonymizer, _read_image(entry), timer)
        frame_judgements = judge(mask, entry.instances)
        judgements += frame_judgements
        over = over_masking(mask, [i.box for i in entry.instances])
        overmask += over
        if not entry.instances:
            negatives += over
        per_image.append(
            {
                "file": entry.file.name,
                "instances": len(entry.instances),
                "exposed_in_goal": [
                    _coverage_row(j) for j in frame_judgements if j.in_goal and not j.anonymized
                ],
                "over_masking": over.ratio,
            }
        )
    return {
        "count": len(images),
        "negatives": sum(1 for e in images if not e.instances),
        "recall": recall_table(judgements).as_dict(),
        "over_masking": overmask.as_dict(),
        "over_masking_negatives": negatives.as_dict(),
        "timing": timer.as_dict(),
        "per_image": per_image,
    }


def evaluate_video(anonymizer: FrameAnonymizer, video: LabeledVideo) -> dict[str, Any]:
    timer = _Timer()
    anonymizer.reset()
    frames: list[list[Judgement]] = []
    overmask = OverMasking(0, 0)
    for frame, instances in zip(_read_video(video), video.frames, strict=False):
        mask = _mask_of(anonymizer, frame, timer)
        frames.append(judge(mask, instances))
        overmask += over_masking(mask, [i.box for i in instances])
    exposures = track_exposures(frames)
    return {
        "file": video.file.name,
        "frames": len(frames),
        "first_frame": video.first_frame,
        "recall": recall_table(j for frame in frames for j in frame).as_dict(),
        "frame_leak": frame_leak_rate(frames).as_dict(),
        "track_leak": track_leak_rate(frames).as_dict(),
        "tracks": [
            {
                "track": e.track,
                "judged_frames": e.judged_frames,
                "exposed_frames": e.exposed_frames,
                "longest_exposed_run": e.longest_exposed_run,
                "min_coverage": round(e.min_coverage, 4),
            }
            for e in exposures
        ],
        "over_masking": overmask.as_dict(),
        "timing": timer.as_dict(),
    }


def goal_summary(report: dict[str, Any]) -> dict[str, Any]:
    """The privacy goal, checked on the stills and on the video separately (pooling them would let the
    95 correlated video frames hide a failure on the stills): recall >= 0.95 for people >= 48 px and
    vehicles >= 32 px tall in each part that has such instances, and a track-leak rate <= 2 %. A class
    that no part measures, or a video that was not evaluated, does not meet the goal."""
    checks = []
    for part in ("images", "video"):
        for cls in GOAL_SIZE:
            goal = report.get(part, {}).get("recall", {}).get(cls, {}).get("goal")
            if goal is not None and goal["total"]:
                recall = goal["recall"]
                checks.append(
                    {
                        "check": f"{part} {cls} recall",
                        "value": recall,
                        "goal": f">= {GOAL_RECALL}",
                        "met": recall >= GOAL_RECALL,
                    }
                )
    track_leak = report.get("video", {}).get("track_leak", {}).get("rate")
    checks.append(
        {
            "check": "video track-leak rate",
            "value": track_leak,
            "goal": f"<= {GOAL_TRACK_LEAK}",
            "met": track_leak is not None and track_leak <= GOAL_TRACK_LEAK,
        }
    )
    measured = {c["check"].split()[1] for c in checks if c["check"].endswith("recall")}
    return {
        "checks": checks,
        "min_height_px": GOAL_SIZE,
        "unmeasured_classes": sorted(set(GOAL_SIZE) - measured),
        "met": all(c["met"] for c in checks) and measured == set(GOAL_SIZE),
    }


def read_inpaint_report(path: Path) -> dict[str, Any]:
    """The inpainting quality (PSNR/SSIM vs Telea) measured by models/inpaint/evaluate.py, if present."""
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        return {"available": False, "reason": f"{path} not found (run models/inpaint/evaluate.py)"}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        return {"available": False, "reason": f"{path}: unreadable ({type(error).__name__})"}
    if not isinstance(document, dict):
        return {"available": False, "reason": f"{path}: expected a JSON object"}
    return {"available": True, "source": str(path), "report": document}


def run_evaluation(
    evaluation_set: EvaluationSet, anonymizer: FrameAnonymizer, inpaint_report: Path | None = None
) -> dict[str, Any]:
    report: dict[str, Any] = {"images": evaluate_images(anonymizer, evaluation_set.images)}
    if evaluation_set.video is not None:
        report["video"] = evaluate_video(anonymizer, evaluation_set.video)
    report["goal"] = goal_summary(report)
    if inpaint_report is not None:
        report["inpainting"] = read_inpaint_report(inpaint_report)
    return report


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def format_summary(report: dict[str, Any]) -> str:
    lines = []
    for part in ("images", "video"):
        if part not in report:
            continue
        section = report[part]
        count = section["count"] if part == "images" else section["frames"]
        lines.append(f"{part} ({count} frames, {section['timing']['mean_ms'] or 0:.0f} ms each):")
        for cls, row in section["recall"].items():
            buckets = ", ".join(
                f"{bucket} {c['anonymized']}/{c['total']}" for bucket, c in row["by_size"].items()
            )
            goal = row["goal"]
            lines.append(
                f"  {cls:8} recall >= {row['goal_min_height_px']} px: {_pct(goal['recall'])}"
                f" ({goal['anonymized']}/{goal['total']}); by size: {buckets or 'none'};"
                f" ignored {row['ignored']}"
            )
        lines.append(f"  over-masking: {_pct(section['over_masking']['ratio'])} of pixels outside the boxes")
        if part == "images":
            lines.append(f"  over-masking on negatives: {_pct(section['over_masking_negatives']['ratio'])}")
        else:
            fl, tl = section["frame_leak"], section["track_leak"]
            lines.append(f"  frame-leak rate: {_pct(fl['rate'])} ({fl['leaking']}/{fl['total']} frames)")
            lines.append(f"  track-leak rate: {_pct(tl['rate'])} ({tl['leaking']}/{tl['total']} tracks)")
    goal = report["goal"]
    checks = ", ".join(
        f"{c['check']} {_pct(c['value'])}{'' if c['met'] else ' (FAILS)'}" for c in goal["checks"]
    )
    lines.append(f"privacy goal: {'MET' if goal['met'] else 'NOT MET'}: {checks}")
    inpainting = report.get("inpainting")
    if inpainting is not None:
        lines.append(
            "inpainting vs Telea: "
            + (
                json.dumps(inpainting["report"], sort_keys=True)[:400]
                if inpainting["available"]
                else inpainting["reason"]
            )
        )
    return "\n".join(lines)


def anonymizer_section(config: Path | None, models_dir: Path) -> AnonymizerSection:
    """The `[anonymizer]` table of ``config`` (only that table is read), or the defaults with the models
    in ``models_dir``."""
    if config is None:
        return AnonymizerSection(models_dir=str(models_dir.resolve()))
    try:
        return load_section(config)
    except ConfigError as error:
        problems = "; ".join(str(p) for p in error.problems[:10])
        raise EvalError(f"{error.source}: {problems}") from None


def build_anonymizer(section: AnonymizerSection) -> FrameAnonymizer:
    """The real anonymizer, its models verified against the signed manifest like on the device."""
    from .pipeline import build_anonymizer as build

    try:
        return build(section)
    except AnonymizerUnavailable as error:
        raise EvalError(f"anonymizer unavailable: {error}") from None


def add_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = commands.add_parser(
        "eval", help="measure the anonymizer's privacy on the labeled evaluation set"
    )
    command.add_argument("--labels", type=Path, default=DEFAULT_LABELS, help=f"default {DEFAULT_LABELS}")
    source = command.add_mutually_exclusive_group()
    source.add_argument(
        "--config", type=Path, default=None, help="agent config whose [anonymizer] table is evaluated"
    )
    source.add_argument(
        "--models-dir",
        type=Path,
        default=DEFAULT_MODELS,
        help=f"signed models folder, with the default [anonymizer] settings (default {DEFAULT_MODELS})",
    )
    command.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON report (default {DEFAULT_OUT})")
    command.add_argument(
        "--inpaint-report",
        type=Path,
        default=DEFAULT_INPAINT_REPORT,
        help=f"inpainting PSNR/SSIM report to include (default {DEFAULT_INPAINT_REPORT})",
    )
    command.add_argument("--no-video", action="store_true", help="skip the video segment")
    command.add_argument(
        "--require-goal", action="store_true", help="exit 3 when the privacy goal is not met"
    )


AnonymizerBuilder = Callable[[AnonymizerSection], FrameAnonymizer]


def main(args: argparse.Namespace, builder: AnonymizerBuilder = build_anonymizer) -> int:
    try:
        evaluation_set = load_labels(args.labels)
    except LabelsError as error:
        print(f"{error.source}: {len(error.problems)} problem(s)", file=sys.stderr)
        for problem in error.problems[:50]:
            print(f"  {problem}", file=sys.stderr)
        return 1
    if args.no_video:
        evaluation_set = EvaluationSet(evaluation_set.images, None)
    try:
        section = anonymizer_section(args.config, args.models_dir)
        report = run_evaluation(evaluation_set, builder(section), args.inpaint_report)
    except (EvalError, EvaluationError) as error:
        print(f"eval: {error}", file=sys.stderr)
        return 1
    report["labels"] = str(args.labels)
    report["anonymizer"] = section.model_dump(exclude={"api"})
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    except OSError as error:
        print(f"eval: cannot write {args.out}: {error.strerror or error}", file=sys.stderr)
        return 1
    print(format_summary(report))
    print(f"report: {args.out}")
    return 3 if args.require_goal and not report["goal"]["met"] else 0
