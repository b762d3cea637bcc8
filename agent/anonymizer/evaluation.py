"""Privacy metrics of the anonymizer, computed from plain numpy masks and labeled boxes.

Everything here is pure: no files, no model. A mask is a 2-D ``bool`` array, True where the anonymizer
masked (filled) the pixel. A box is ``(x, y, w, h)`` in pixels of the frame, origin top left.

Definitions (they are what `msec-agent eval` reports, see docs/privacy-evaluation.md):

- **coverage** of a box: the fraction of the box's pixels, after clipping the box to the frame, that are
  masked. A box partly outside the frame is judged on its visible part only; a box with no visible pixel
  is a labeling error and raises.
- **anonymized**: an instance counts as anonymized only if its coverage is at least 95 %
  (`ANONYMIZED_COVERAGE`). A face, a plate or a gait can be recognised from a small uncovered strip, so
  partial masking is exposure, not "mostly fine".
- **size**: the box height in pixels (the visible height after clipping), for both classes. Buckets:
  ``tiny`` < 16 px, ``small`` < goal, ``medium`` goal..< 96 px, ``large`` >= 96 px, where the goal size is
  48 px for people and 32 px for vehicles (the privacy goal: recall >= 0.95 from that size up).
- **recall** per class and bucket: anonymized / labeled instances. Instances flagged ``ignore`` (tiny or
  heavily occluded, labeled but not judged) or ``crowd`` (one box over several people) are left out of
  recall and counted separately.
- **frame leak**: a video frame leaks if at least one *judged* instance in it (not ignored, not crowd,
  at least the goal size) is not anonymized. frame-leak rate = leaking frames / frames that contain at
  least one judged instance.
- **track leak**: a track (one person or vehicle followed through the segment, labeled with a track id)
  leaks if it is not anonymized in **any single** frame where it is judged. One exposed frame is enough
  to identify someone, so a privacy officer must not average exposure over a track. track-leak rate =
  leaking tracks / tracks judged in at least one frame. Each track's exposed frame count and its longest
  run of consecutive exposed frames are reported too, so a leak can be found and looked at.
- **over-masking**: masked pixels outside every labeled box (ignored and crowd boxes included, since
  masking them is right) as a fraction of all pixels outside the boxes. With ``margin`` > 0 the boxes are
  grown by that many pixels on each side first, which forgives the anonymizer's deliberate dilation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

ANONYMIZED_COVERAGE = 0.95
CLASSES = ("person", "vehicle")
SUBCLASSES = ("car", "bus", "truck", "bicycle", "motorcycle")
GOAL_SIZE = {"person": 48, "vehicle": 32}  # px of box height: the privacy goal holds from this size up
TINY = 16
LARGE = 96
BUCKETS = ("tiny", "small", "medium", "large")


class EvaluationError(ValueError):
    """A mask or a box that cannot be judged (wrong shape or type, no visible pixel)."""


@dataclass(frozen=True)
class Instance:
    """One labeled person or vehicle in one frame."""

    box: tuple[float, float, float, float]
    cls: str
    ignore: bool = False
    crowd: bool = False
    subclass: str | None = None
    track: int | None = None

    def __post_init__(self) -> None:
        if self.cls not in CLASSES:
            raise EvaluationError(f"class must be one of {', '.join(CLASSES)} (found {self.cls!r})")
        check_box(self.box)

    @property
    def judged(self) -> bool:
        """Whether this instance counts in recall (not flagged ignore or crowd)."""
        return not (self.ignore or self.crowd)


def check_box(box: Sequence[float]) -> None:
    """Raise EvaluationError unless ``box`` is four finite numbers with a positive width and height."""
    if isinstance(box, str | bytes) or len(box) != 4:
        raise EvaluationError(f"a box is [x, y, w, h] (found {box!r})")
    for value in box:
        if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
            raise EvaluationError(f"box values must be numbers (found {box!r})")
        if not math.isfinite(value):
            raise EvaluationError(f"box values must be finite (found {box!r})")
    if box[2] <= 0 or box[3] <= 0:
        raise EvaluationError(f"box width and height must be positive (found {box!r})")


def check_mask(mask: np.ndarray, shape: tuple[int, int] | None = None) -> None:
    """Raise EvaluationError unless ``mask`` is a 2-D bool array (of ``shape``, when given)."""
    if not isinstance(mask, np.ndarray):
        raise EvaluationError(f"a mask is a numpy array (found {type(mask).__name__})")
    if mask.ndim != 2 or mask.dtype != np.bool_:
        raise EvaluationError(f"a mask is a 2-D bool array (found {mask.ndim}-D {mask.dtype})")
    if mask.shape[0] == 0 or mask.shape[1] == 0:
        raise EvaluationError(f"a mask must not be empty (found shape {mask.shape})")
    if shape is not None and mask.shape != tuple(shape):
        raise EvaluationError(f"mask shape {mask.shape} does not match the frame {tuple(shape)}")


def pixel_bounds(box: Sequence[float], height: int, width: int) -> tuple[int, int, int, int] | None:
    """The box's pixel rows/columns ``(y0, y1, x0, x1)`` (end exclusive) clipped to the frame, or None
    when no pixel of the frame lies in it. Fractional edges round outwards: a pixel the box touches is
    part of it, so a box can never shrink onto fewer pixels than the labeler drew."""
    check_box(box)
    x, y, w, h = (float(v) for v in box)
    x0, y0 = max(0, math.floor(x)), max(0, math.floor(y))
    x1, y1 = min(width, math.ceil(x + w)), min(height, math.ceil(y + h))
    if x0 >= x1 or y0 >= y1:
        return None
    return y0, y1, x0, x1


def box_coverage(mask: np.ndarray, box: Sequence[float]) -> float:
    """Fraction (0..1) of the box's visible pixels that are masked."""
    check_mask(mask)
    bounds = pixel_bounds(box, *mask.shape)
    if bounds is None:
        raise EvaluationError(
            f"box {list(box)} lies entirely outside the {mask.shape[1]}x{mask.shape[0]} frame"
        )
    y0, y1, x0, x1 = bounds
    return float(np.count_nonzero(mask[y0:y1, x0:x1])) / ((y1 - y0) * (x1 - x0))


def is_anonymized(mask: np.ndarray, box: Sequence[float]) -> bool:
    """True when at least 95 % of the box's visible pixels are masked."""
    return box_coverage(mask, box) >= ANONYMIZED_COVERAGE


def visible_height(box: Sequence[float], height: int, width: int) -> int:
    """The box height in pixels after clipping to the frame (0 when it lies outside)."""
    bounds = pixel_bounds(box, height, width)
    return 0 if bounds is None else bounds[1] - bounds[0]


def size_bucket(cls: str, height_px: float) -> str:
    """``tiny`` / ``small`` / ``medium`` / ``large`` for a box of that height (see the module docstring)."""
    if cls not in GOAL_SIZE:
        raise EvaluationError(f"class must be one of {', '.join(CLASSES)} (found {cls!r})")
    if height_px < TINY:
        return "tiny"
    if height_px < GOAL_SIZE[cls]:
        return "small"
    return "medium" if height_px < LARGE else "large"


def in_goal(cls: str, height_px: float) -> bool:
    """Whether an instance of this class and height falls under the privacy goal."""
    return size_bucket(cls, height_px) in ("medium", "large")


@dataclass(frozen=True)
class Judgement:
    """One instance judged against one mask."""

    instance: Instance
    coverage: float
    height_px: int

    @property
    def anonymized(self) -> bool:
        return self.coverage >= ANONYMIZED_COVERAGE

    @property
    def bucket(self) -> str:
        return size_bucket(self.instance.cls, self.height_px)

    @property
    def in_goal(self) -> bool:
        """Judged (not ignore/crowd) and at least the goal size: what the goal and the leak rates count."""
        return self.instance.judged and in_goal(self.instance.cls, self.height_px)


def judge(mask: np.ndarray, instances: Iterable[Instance]) -> list[Judgement]:
    """Coverage of every instance of one frame by that frame's mask."""
    check_mask(mask)
    height, width = mask.shape
    return [
        Judgement(instance, box_coverage(mask, instance.box), visible_height(instance.box, height, width))
        for instance in instances
    ]


@dataclass
class RecallCount:
    anonymized: int = 0
    total: int = 0

    @property
    def recall(self) -> float | None:
        """anonymized / total, or None when nothing was counted (no instances is not a recall of 1)."""
        return self.anonymized / self.total if self.total else None

    def add(self, anonymized: bool) -> None:
        self.total += 1
        self.anonymized += int(anonymized)

    def as_dict(self) -> dict[str, float | int | None]:
        return {"anonymized": self.anonymized, "total": self.total, "recall": self.recall}


@dataclass
class RecallTable:
    """Recall per (class, size bucket), the goal rows, and the counts of instances left out."""

    by_bucket: dict[tuple[str, str], RecallCount] = field(default_factory=dict)
    goal: dict[str, RecallCount] = field(default_factory=dict)
    ignored: dict[str, int] = field(default_factory=dict)
    crowd: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            cls: {
                "by_size": {
                    bucket: self.by_bucket[(cls, bucket)].as_dict()
                    for bucket in BUCKETS
                    if (cls, bucket) in self.by_bucket
                },
                "goal": self.goal.get(cls, RecallCount()).as_dict(),
                "goal_min_height_px": GOAL_SIZE[cls],
                "ignored": self.ignored.get(cls, 0),
                "crowd": self.crowd.get(cls, 0),
            }
            for cls in CLASSES
        }


def recall_table(judgements: Iterable[Judgement]) -> RecallTable:
    """Privacy recall per class and size bucket over any number of frames."""
    table = RecallTable()
    for j in judgements:
        cls = j.instance.cls
        if j.instance.ignore:
            table.ignored[cls] = table.ignored.get(cls, 0) + 1
            continue
        if j.instance.crowd:
            table.crowd[cls] = table.crowd.get(cls, 0) + 1
            continue
        table.by_bucket.setdefault((cls, j.bucket), RecallCount()).add(j.anonymized)
        if j.in_goal:
            table.goal.setdefault(cls, RecallCount()).add(j.anonymized)
    return table


@dataclass(frozen=True)
class LeakRate:
    leaking: int
    total: int

    @property
    def rate(self) -> float | None:
        """leaking / total, or None when there was nothing to judge."""
        return self.leaking / self.total if self.total else None

    def as_dict(self) -> dict[str, float | int | None]:
        return {"leaking": self.leaking, "total": self.total, "rate": self.rate}


def frame_leak_rate(frames: Sequence[Sequence[Judgement]]) -> LeakRate:
    """Frames with at least one exposed goal-size instance / frames with at least one goal-size instance."""
    counted = [[j for j in frame if j.in_goal] for frame in frames]
    counted = [frame for frame in counted if frame]
    return LeakRate(sum(1 for frame in counted if not all(j.anonymized for j in frame)), len(counted))


@dataclass(frozen=True)
class TrackExposure:
    track: int
    judged_frames: int
    exposed_frames: int
    longest_exposed_run: int
    min_coverage: float

    @property
    def leaked(self) -> bool:
        return self.exposed_frames > 0


def track_exposures(frames: Sequence[Sequence[Judgement]]) -> list[TrackExposure]:
    """Per track: frames where it was judged, frames where it was exposed, the longest run of consecutive
    exposed frames (a frame where the track is not judged ends a run) and its lowest coverage."""
    judged: dict[int, int] = {}
    exposed: dict[int, int] = {}
    run: dict[int, int] = {}
    longest: dict[int, int] = {}
    lowest: dict[int, float] = {}
    for frame in frames:
        seen: set[int] = set()
        for j in frame:
            track = j.instance.track
            if track is None or not j.in_goal:
                continue
            if track in seen:
                raise EvaluationError(f"track {track} appears twice in one frame")
            seen.add(track)
            judged[track] = judged.get(track, 0) + 1
            lowest[track] = min(lowest.get(track, 1.0), j.coverage)
            if j.anonymized:
                run[track] = 0
            else:
                exposed[track] = exposed.get(track, 0) + 1
                run[track] = run.get(track, 0) + 1
                longest[track] = max(longest.get(track, 0), run[track])
        for track in list(run):
            if track not in seen:
                run[track] = 0
    return [
        TrackExposure(t, judged[t], exposed.get(t, 0), longest.get(t, 0), lowest[t]) for t in sorted(judged)
    ]


def track_leak_rate(frames: Sequence[Sequence[Judgement]]) -> LeakRate:
    """Tracks exposed in at least one frame where they are judged / tracks judged in at least one frame."""
    exposures = track_exposures(frames)
    return LeakRate(sum(1 for e in exposures if e.leaked), len(exposures))


def _outside_boxes(shape: tuple[int, int], boxes: Iterable[Sequence[float]], margin: int) -> np.ndarray:
    if margin < 0:
        raise EvaluationError(f"margin must not be negative (found {margin})")
    outside = np.ones(shape, dtype=bool)
    for box in boxes:
        check_box(box)
        x, y, w, h = (float(v) for v in box)
        bounds = pixel_bounds((x - margin, y - margin, w + 2 * margin, h + 2 * margin), *shape)
        if bounds is not None:
            y0, y1, x0, x1 = bounds
            outside[y0:y1, x0:x1] = False
    return outside


@dataclass(frozen=True)
class OverMasking:
    masked_outside: int
    outside: int

    @property
    def ratio(self) -> float | None:
        """Masked pixels outside the boxes / pixels outside the boxes (None when boxes cover the frame)."""
        return self.masked_outside / self.outside if self.outside else None

    def __add__(self, other: OverMasking) -> OverMasking:
        return OverMasking(self.masked_outside + other.masked_outside, self.outside + other.outside)

    def as_dict(self) -> dict[str, float | int | None]:
        return {"masked_outside_px": self.masked_outside, "outside_px": self.outside, "ratio": self.ratio}


def over_masking(mask: np.ndarray, boxes: Iterable[Sequence[float]], margin: int = 0) -> OverMasking:
    """Masked pixels outside every box (grown by ``margin`` px) and the number of pixels outside them."""
    check_mask(mask)
    outside = _outside_boxes(mask.shape, boxes, margin)
    return OverMasking(int(np.count_nonzero(mask & outside)), int(np.count_nonzero(outside)))
