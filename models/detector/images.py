"""The detector's calibration and agreement images, read from Debian packages unpacked under a root folder.

`calibration.list` names each image by package, version and path (a video frame by its index). This module
enforces the project's evaluation/training split itself: a line that names an evaluation source is an error,
so a slip in the list fails the build instead of quietly calibrating on the test set.

    python images.py calibration.list <root> <out.npy>   # (N, 300, 300, 3) float32 RGB in [-1, 1]
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

SIZE = 300  # the SSD's input side
# The evaluation set (privacy recall, leaks, inpainting quality) owns these; see models/README.md.
EVAL_FILES = {"messi5.jpg", "licenseplate_motion.jpg", "basketball1.png", "basketball2.png"}
EVAL_FOLDERS = ("usr/share/darknet/data/",)
EVAL_VIDEO = "vtest.avi"


class ListError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class ImageSource:
    package: str
    version: str
    path: str
    frame: int | None = None

    def describe(self) -> str:
        where = f"{self.path}#{self.frame}" if self.frame is not None else self.path
        return f"{self.package} {self.version} {where}"


def is_evaluation(source: ImageSource) -> bool:
    name = PurePosixPath(source.path).name
    if name in EVAL_FILES or source.path.startswith(EVAL_FOLDERS):
        return True
    if name == EVAL_VIDEO:
        return source.frame is None or source.frame >= 700 or source.frame % 25 in (0, 12)
    return False


def read_list(path: Path) -> dict[str, list[ImageSource]]:
    """Sections (`[calibration]`, `[agreement]`) of the list, each a list of sources, in file order."""
    sections: dict[str, list[ImageSource]] = {}
    current: list[ImageSource] | None = None
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        fields = line.split()
        if current is None or len(fields) not in (3, 4):
            raise ListError(f"{path}:{number}: expected '<package> <version> <path> [frame]' in a [section]")
        frame = int(fields[3]) if len(fields) == 4 else None
        if frame is not None and frame < 0:  # OpenCV would quietly seek to frame 0, an evaluation frame
            raise ListError(f"{path}:{number}: frame index must be >= 0")
        source = ImageSource(fields[0], fields[1], fields[2], frame)
        if PurePosixPath(source.path).is_absolute() or ".." in PurePosixPath(source.path).parts:
            raise ListError(f"{path}:{number}: path must be relative to the package root")
        if is_evaluation(source):
            raise ListError(f"{path}:{number}: {source.describe()} belongs to the evaluation set")
        current.append(source)
    seen: dict[ImageSource, str] = {}
    for name, sources in sections.items():
        for source in sources:
            if source in seen:
                raise ListError(f"{source.describe()} is in both [{seen[source]}] and [{name}]")
            seen[source] = name
    return sections


def load_rgb(root: Path, source: ImageSource) -> np.ndarray:
    """The image (or video frame) as RGB uint8, full size."""
    file = root / source.path
    if source.frame is None:
        bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
    else:
        capture = cv2.VideoCapture(str(file))
        try:
            capture.set(cv2.CAP_PROP_POS_FRAMES, source.frame)
            ok, bgr = capture.read()
        finally:
            capture.release()
        bgr = bgr if ok else None
    if bgr is None:
        raise ListError(f"{source.describe()}: cannot be read from {file}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def model_input(rgb: np.ndarray) -> np.ndarray:
    """The fp16 SSD's input for one image: 300x300 RGB scaled to [-1, 1] (MediaPipe's objectron graph)."""
    resized = cv2.resize(rgb, (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    return resized.astype(np.float32) / 127.5 - 1.0


def iter_images(root: Path, sources: list[ImageSource]) -> Iterator[tuple[ImageSource, np.ndarray]]:
    for source in sources:
        yield source, load_rgb(root, source)


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        sources = read_list(Path(argv[1])).get("calibration", [])
        batch = np.stack([model_input(rgb) for _, rgb in iter_images(Path(argv[2]), sources)])
    except (ListError, OSError, ValueError) as exc:
        print(f"images: {exc}", file=sys.stderr)
        return 1
    np.save(argv[3], batch)
    print(f"images: {len(batch)} calibration images -> {argv[3]} {batch.shape}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
