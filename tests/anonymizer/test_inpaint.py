"""Inpainting backends: every masked pixel replaced, nothing else touched, no hole pixel read."""

from __future__ import annotations

import numpy as np
import pytest

from agent.anonymizer.inpaint import (
    FILL_BGR,
    FallbackInpainter,
    LearnedInpainter,
    SolidFill,
    TeleaInpainter,
    reduce_mask,
)
from agent.anonymizer.runtime import ModelError, TfliteModel

from .kit import DATA, detector_files

MAGENTA = (255, 0, 255)  # the "person": a colour nothing else in the scene has


def scene() -> tuple[np.ndarray, np.ndarray]:
    """A gradient background with two magenta holes, and their mask."""
    y, x = np.mgrid[0:240, 0:320]
    image = np.stack([(x * 0.7) % 200, (y * 0.9) % 200, (x + y) % 150], axis=2).astype(np.uint8)
    mask = np.zeros((240, 320), bool)
    mask[40:140, 50:90] = True
    mask[150:230, 200:260] = True
    image[mask] = MAGENTA
    return image, mask


def tiny_model() -> TfliteModel:
    return TfliteModel((DATA / "tiny_inpaint_32.tflite").read_bytes(), name="tiny")


def backends() -> list[object]:
    return [SolidFill(), TeleaInpainter(), LearnedInpainter(tiny_model())]


@pytest.mark.parametrize("backend", backends(), ids=lambda b: b.name)
def test_every_masked_pixel_is_replaced_and_no_other(backend) -> None:
    image, mask = scene()
    out = backend.fill(image, mask)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert np.array_equal(out[~mask], image[~mask])
    # Not one hole pixel survives, nor a trace of it: no magenta-ish pixel anywhere.
    reddish_blue = (out[..., 0] > 200) & (out[..., 2] > 200) & (out[..., 1] < 60)
    assert not reddish_blue.any()
    assert image is not out and np.array_equal(image[mask][0], MAGENTA)  # the input is left alone


def test_the_learned_model_fills_the_hole_with_its_prediction() -> None:
    image, mask = scene()
    out = LearnedInpainter(tiny_model()).fill(image, mask)
    # The tiny model predicts RGB (51, 229, 102) everywhere: BGR (102, 229, 51) inside the holes.
    inner = out[60:120, 60:80].reshape(-1, 3).astype(int)
    assert np.all(np.abs(inner - [102, 229, 51]) <= 2)


def test_solid_fill_and_telea_of_an_empty_mask_change_nothing() -> None:
    image, _ = scene()
    empty = np.zeros(image.shape[:2], bool)
    for backend in backends():
        assert np.array_equal(backend.fill(image, empty), image)  # type: ignore[attr-defined]
    assert np.all(SolidFill().fill(image, ~empty) == FILL_BGR)


def test_reduced_masks_cover_every_pixel_that_touches_the_hole() -> None:
    mask = np.zeros((480, 640), bool)
    mask[101, 333] = True  # one pixel
    small = reduce_mask(mask, (128, 96))
    assert small.sum() >= 1 and small[101 * 96 // 480, 333 * 128 // 640]


def test_a_model_without_the_inpainting_contract_is_refused() -> None:
    with pytest.raises(ModelError, match=r"expected input \[1,S,S,4\]"):
        LearnedInpainter(TfliteModel(detector_files()[0].read_bytes(), name="ssd"))


class Broken:
    name = "learned"

    def fill(self, bgr: np.ndarray, mask: np.ndarray) -> np.ndarray:
        raise RuntimeError("simulated failure of a backend")


def test_a_failing_backend_falls_back_and_is_counted() -> None:
    image, mask = scene()
    chain = FallbackInpainter([Broken(), TeleaInpainter(), SolidFill()])
    out = chain.fill(image, mask)
    assert chain.failures == {"learned": 1, "telea": 0, "fill": 0} and chain.last_used == "telea"
    assert np.array_equal(out[~mask], image[~mask])
    with pytest.raises(RuntimeError, match="every inpainting backend failed"):
        FallbackInpainter([Broken()]).fill(image, mask)


class _Ticks:
    """A clock that advances one second per reading: each learned window 'costs' one second."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_the_budget_gives_the_biggest_holes_to_the_model_and_the_rest_to_telea() -> None:
    image, mask = scene()  # two holes: 40x100 (4,000 px) and 60x80 (4,800 px)
    learned = LearnedInpainter(tiny_model(), budget=1.5, rest=TeleaInpainter(), clock=_Ticks())
    out = learned.fill(image, mask)
    assert (learned.windows_learned, learned.windows_rest) == (1, 1)
    assert learned.last_used == "learned+telea"
    model_colour = [102, 229, 51]
    big = out[160:220, 210:250].reshape(-1, 3).astype(int)  # the bigger hole: the model's colour
    small = out[60:120, 60:80].reshape(-1, 3).astype(int)  # the smaller one: Telea's, not the model's
    assert np.all(np.abs(big - model_colour) <= 2)
    assert np.abs(small - model_colour).max() > 20
    assert np.array_equal(out[~mask], image[~mask])
    assert not ((out[..., 0] > 200) & (out[..., 2] > 200) & (out[..., 1] < 60)).any()


@pytest.mark.parametrize("budget, learned_windows", [(0.0, 0), (100.0, 2)])
def test_a_zero_budget_is_telea_only_and_a_large_one_is_the_model_only(budget, learned_windows) -> None:
    image, mask = scene()
    learned = LearnedInpainter(tiny_model(), budget=budget, rest=TeleaInpainter(), clock=_Ticks())
    out = learned.fill(image, mask)
    assert learned.windows_learned == learned_windows
    assert np.array_equal(out[~mask], image[~mask])
    chain = FallbackInpainter([learned, SolidFill()])
    chain.fill(image, mask)
    assert chain.last_used == ("learned" if learned_windows == 2 else "learned+telea")
