"""Filling the masked pixels: a learned model (GLCIC), else OpenCV's Telea, else a solid fill.

Every backend replaces every masked pixel and nothing else; none of them ever reads a masked pixel, not
even through resampling: each works on a reduced copy whose mask covers every reduced pixel that touches
the hole ("any coverage"), so no original hole pixel is blended into the fill.

The learned model's contract (models/README.md): input float32 [1,S,S,4] NHWC, RGB in [-1,1] with hole
pixels 0 and channel 3 the mask (1 in the hole); output float32 [1,S,S,3] RGB in [-1,1], not composited.
Each connected hole is filled in a square window around it (context on every side), resized to S.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

import cv2
import numpy as np

from .runtime import ModelError, TfliteModel

log = logging.getLogger("agent.anonymizer")

_CONTEXT = 1.0  # learned window: the hole's size again on each side, for context
_TELEA_MAX_SIDE = 160  # Telea is O(hole area): work on a copy at most this big, upscale the fill
_TELEA_RADIUS = 3
FILL_BGR = (128, 128, 128)


class Inpainter(Protocol):
    name: str

    def fill(self, bgr: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """A copy of `bgr` whose `mask` pixels are replaced."""
        ...


def reduce_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`mask` at `size` (w, h), True wherever a reduced pixel touches the hole."""
    return cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0


def _composite(bgr: np.ndarray, mask: np.ndarray, filled: np.ndarray) -> np.ndarray:
    out = bgr.copy()
    out[mask] = filled[mask]
    return out


class SolidFill:
    name = "fill"

    def fill(self, bgr: np.ndarray, mask: np.ndarray) -> np.ndarray:
        out = bgr.copy()
        out[mask] = FILL_BGR
        return out


class TeleaInpainter:
    name = "telea"

    def fill(self, bgr: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if not mask.any():
            return bgr.copy()
        height, width = mask.shape
        factor = min(1.0, _TELEA_MAX_SIDE / max(height, width))
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        small = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
        small_mask = reduce_mask(mask, size)
        small[small_mask] = 0  # the hole's reduced pixels carry no trace of the original
        filled = cv2.inpaint(small, small_mask.astype(np.uint8), _TELEA_RADIUS, cv2.INPAINT_TELEA)
        return _composite(bgr, mask, cv2.resize(filled, (width, height), interpolation=cv2.INTER_LINEAR))


class LearnedInpainter:
    """The learned model per hole, within a time budget per frame: the biggest holes (where Telea smears
    most) are filled by the model first; once `budget` seconds are spent, the rest go to `rest` (Telea),
    so a crowded frame costs at most about the budget plus Telea, not one model run per person."""

    name = "learned"

    def __init__(
        self,
        model: TfliteModel,
        *,
        budget: float | None = None,
        rest: Inpainter | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        shapes = [info.shape for info in model.inputs], [info.shape for info in model.outputs]
        if (
            len(shapes[0]) != 1
            or len(shapes[1]) != 1
            or len(shapes[0][0]) != 4
            or shapes[0][0][0] != 1
            or shapes[0][0][3] != 4
            or shapes[0][0][1] != shapes[0][0][2]
            or shapes[1][0] != (*shapes[0][0][:3], 3)
        ):
            raise ModelError(f"{model.name}: expected input [1,S,S,4] and output [1,S,S,3], got {shapes}")
        self.model = model
        self.size = shapes[0][0][1]
        self.budget, self.rest, self.clock = budget, rest, clock
        self.last_used = self.name
        self.windows_learned = 0  # counters: how often the budget left holes to `rest`
        self.windows_rest = 0
        self._window_cost: float | None = None  # moving average of one window's time

    def _over_budget(self, spent: float) -> bool:
        if self.rest is None or self.budget is None:
            return False
        return spent + (self._window_cost or 0.0) > self.budget

    def fill(self, bgr: np.ndarray, mask: np.ndarray) -> np.ndarray:
        out = bgr.copy()
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
        height, width = mask.shape
        started = self.clock()
        biggest_first = sorted(range(1, count), key=lambda label: -int(stats[label, cv2.CC_STAT_AREA]))
        left: list[int] = []
        for label in biggest_first:
            # Start a window only if it should finish within the budget (its cost as measured so far).
            if self._over_budget(self.clock() - started):
                left.append(label)
                continue
            window_started = self.clock()
            x, y, w, h = (int(v) for v in stats[label, :4])
            side = max(w, h)
            side = min(round(side * (1 + 2 * _CONTEXT)), max(width, height))
            x0 = int(np.clip(x + w / 2 - side / 2, 0, max(width - side, 0)))
            y0 = int(np.clip(y + h / 2 - side / 2, 0, max(height - side, 0)))
            x1, y1 = min(x0 + side, width), min(y0 + side, height)
            # The window's whole mask, not only this component: another hole inside it must not be read.
            window = self._fill_window(out[y0:y1, x0:x1], mask[y0:y1, x0:x1])
            region = mask[y0:y1, x0:x1]
            out[y0:y1, x0:x1][region] = window[region]
            cost = self.clock() - window_started
            self._window_cost = cost if self._window_cost is None else 0.8 * self._window_cost + 0.2 * cost
        self.windows_learned += count - 1 - len(left)
        self.last_used = self.name
        if left and self.rest is not None:
            # Only the holes still open: the learned fills around them are context now, not holes.
            self.windows_rest += len(left)
            self.last_used = f"{self.name}+{self.rest.name}"
            return self.rest.fill(out, np.isin(labels, left))
        return out

    def _fill_window(self, bgr: np.ndarray, mask: np.ndarray) -> np.ndarray:
        height, width = mask.shape
        size = (self.size, self.size)
        small_mask = reduce_mask(mask, size)
        rgb = cv2.cvtColor(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        image = rgb.astype(np.float32) / 127.5 - 1.0
        image[small_mask] = 0.0
        hole = small_mask.astype(np.float32)[..., np.newaxis]
        (pred,) = self.model.run(np.concatenate([image, hole], axis=2)[np.newaxis])
        pred = np.nan_to_num(pred[0], nan=0.0, posinf=1.0, neginf=-1.0)
        done = pred * hole + image * (1.0 - hole)
        rgb_out = np.clip((done + 1.0) * 127.5, 0, 255).astype(np.uint8)
        bgr_out = cv2.cvtColor(rgb_out, cv2.COLOR_RGB2BGR)
        return cv2.resize(bgr_out, (width, height), interpolation=cv2.INTER_LINEAR)


class FallbackInpainter:
    """Tries each backend in order; one that fails is counted and the next fills the frame."""

    def __init__(self, backends: Sequence[Inpainter]) -> None:
        self.backends = list(backends)
        self.failures: dict[str, int] = {b.name: 0 for b in self.backends}
        self.last_used = ""
        self.name = "+".join(b.name for b in self.backends)

    def fill(self, bgr: np.ndarray, mask: np.ndarray) -> np.ndarray:
        for backend in self.backends:
            try:
                filled = backend.fill(bgr, mask)
            except Exception as error:  # the next backend (at the end a solid fill) still covers the hole
                self.failures[backend.name] += 1
                log.warning("inpainting backend %s failed: %s", backend.name, type(error).__name__)
                continue
            self.last_used = getattr(backend, "last_used", backend.name)
            return filled
        raise RuntimeError("every inpainting backend failed")
