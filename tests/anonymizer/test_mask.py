"""Masks: dilated boxes, and the hold-over that covers a person missed for a frame."""

from __future__ import annotations

from agent.anonymizer.mask import MaskBuilder, box_mask, dilate


def test_dilation_adds_a_ratio_and_pixels_and_stays_inside() -> None:
    assert dilate((100, 100, 200, 300), 640, 480, 0.1, 4) == (86, 76, 214, 324)
    assert dilate((0, 0, 50, 50), 60, 60, 0.5, 10) == (0, 0, 60, 60)


def test_box_mask_covers_exactly_the_boxes() -> None:
    mask = box_mask((10, 20), [(2, 3, 5, 6), (18, 8, 20, 10)])
    assert mask.sum() == 9 + 4 and mask[3, 2] and not mask[6, 5]


def test_a_box_is_held_for_hold_frames_after_it_disappears() -> None:
    builder = MaskBuilder(ratio=0.0, pixels=0, hold_frames=2)
    assert builder.build((100, 100), [(10, 10, 20, 20)]).sum() == 100
    assert builder.build((100, 100), []).sum() == 100  # missed once: still covered
    assert builder.build((100, 100), []).sum() == 100  # twice
    assert builder.build((100, 100), []).sum() == 0  # gone for longer than hold_frames


def test_reset_forgets_the_history_and_zero_hold_keeps_none() -> None:
    builder = MaskBuilder(ratio=0.0, pixels=0, hold_frames=3)
    builder.build((100, 100), [(10, 10, 20, 20)])
    builder.reset()
    assert not builder.build((100, 100), []).any()
    still = MaskBuilder(ratio=0.0, pixels=0, hold_frames=0)
    still.build((100, 100), [(10, 10, 20, 20)])
    assert not still.build((100, 100), []).any()


def test_boxes_of_a_larger_earlier_frame_are_not_applied_to_a_smaller_one() -> None:
    builder = MaskBuilder(ratio=0.0, pixels=0, hold_frames=3)
    builder.build((480, 640), [(600, 400, 640, 480)])
    assert not builder.build((240, 320), []).any()
