"""From detections to the mask of pixels to remove: boxes dilated by a margin, held for a few frames.

Hold-over: a detector misses a person now and then for a frame (motion blur, occlusion). The boxes of the
last `hold_frames` frames stay masked, so one missed frame does not show that person. Still images (the
`/image` API) use no history (`reset()` before each).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

import numpy as np

Box = tuple[int, int, int, int]  # x0, y0, x1, y1


def dilate(box: Box, width: int, height: int, ratio: float, pixels: int) -> Box:
    x0, y0, x1, y1 = box
    dx = round((x1 - x0) * ratio) + pixels
    dy = round((y1 - y0) * ratio) + pixels
    return max(x0 - dx, 0), max(y0 - dy, 0), min(x1 + dx, width), min(y1 + dy, height)


def box_mask(shape: tuple[int, int], boxes: Iterable[Box]) -> np.ndarray:
    """A bool H x W mask, True inside any box."""
    mask = np.zeros(shape, bool)
    for x0, y0, x1, y1 in boxes:
        mask[y0:y1, x0:x1] = True
    return mask


class MaskBuilder:
    def __init__(self, *, ratio: float, pixels: int, hold_frames: int) -> None:
        self.ratio, self.pixels = ratio, pixels
        self._history: deque[list[Box]] = deque(maxlen=hold_frames)

    def build(self, shape: tuple[int, int], boxes: Iterable[Box]) -> np.ndarray:
        """The mask for this frame: its own boxes and those of the held frames, dilated."""
        height, width = shape
        current = [dilate(box, width, height, self.ratio, self.pixels) for box in boxes]
        # A new frame size (camera reconfigured) invalidates the old boxes: they would mask the wrong place.
        held = [b for frame in self._history for b in frame if b[2] <= width and b[3] <= height]
        mask = box_mask(shape, [*current, *held])
        if self._history.maxlen:
            self._history.append(current)
        return mask

    def reset(self) -> None:
        self._history.clear()
