"""The privacy metrics against cases computed by hand, and against masks and boxes that cannot be judged."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agent.anonymizer.evaluation import (
    EvaluationError,
    Instance,
    Judgement,
    box_coverage,
    frame_leak_rate,
    in_goal,
    is_anonymized,
    judge,
    over_masking,
    pixel_bounds,
    recall_table,
    size_bucket,
    track_exposures,
    track_leak_rate,
    visible_height,
)


def mask_with(shape: tuple[int, int], *rects: tuple[int, int, int, int]) -> np.ndarray:
    """A bool mask with the given (x, y, w, h) rectangles set."""
    mask = np.zeros(shape, dtype=bool)
    for x, y, w, h in rects:
        mask[y : y + h, x : x + w] = True
    return mask


# -- coverage ---------------------------------------------------------------------------------------------


def test_coverage_counts_the_masked_share_of_the_box() -> None:
    mask = mask_with((100, 100), (10, 10, 10, 5))  # the top half of a 10x10 box
    assert box_coverage(mask, (10, 10, 10, 10)) == 0.5
    assert box_coverage(mask, (10, 10, 10, 5)) == 1.0
    assert box_coverage(mask, (50, 50, 10, 10)) == 0.0


def test_an_instance_is_anonymized_from_95_percent_and_not_below() -> None:
    box = (0, 0, 10, 10)
    assert is_anonymized(mask_with((20, 20), (0, 0, 10, 10)), box)
    exactly_95 = mask_with((20, 20), (0, 0, 10, 9), (0, 9, 5, 1))  # 90 + 5 of 100 pixels
    assert box_coverage(exactly_95, box) == 0.95
    assert is_anonymized(exactly_95, box)
    one_pixel_short = mask_with((20, 20), (0, 0, 10, 9), (0, 9, 4, 1))  # 94 of 100
    assert not is_anonymized(one_pixel_short, box)


def test_a_box_partly_outside_the_frame_is_judged_on_its_visible_part() -> None:
    mask = mask_with((10, 10), (6, 0, 4, 10))  # the right 4 columns
    assert box_coverage(mask, (6, 0, 20, 10)) == 1.0  # 14 of its 20 columns are off the frame
    assert pixel_bounds((-5, -5, 10, 10), 10, 10) == (0, 5, 0, 5)
    assert visible_height((0, 8, 5, 10), 10, 10) == 2


def test_fractional_box_edges_round_outwards() -> None:
    assert pixel_bounds((1.5, 2.2, 3.0, 2.0), 10, 10) == (2, 5, 1, 5)
    mask = mask_with((10, 10), (2, 2, 2, 3))  # covers columns 2..3 only; the box also touches 1 and 4
    assert box_coverage(mask, (1.5, 2.2, 3.0, 2.0)) == 6 / 12


@pytest.mark.parametrize(
    "box",
    [(20, 20, 5, 5), (-10, 0, 5, 5), (0, 10, 5, 5), (3, -8, 2, 8)],
    ids=["right-below", "left", "just-below", "just-above"],
)
def test_a_box_with_no_visible_pixel_is_an_error(box: tuple[int, int, int, int]) -> None:
    with pytest.raises(EvaluationError, match="outside"):
        box_coverage(np.zeros((10, 10), dtype=bool), box)


@pytest.mark.parametrize(
    "box",
    [
        (0, 0, 0, 5),
        (0, 0, 5, 0),
        (0, 0, -3, 5),
        (0, 0, math.nan, 5),
        (0, math.inf, 5, 5),
        (0, 0, 5),
        (0, 0, 5, 5, 5),
        "0,0,5,5",
        (0, 0, "5", 5),
        (True, 0, 5, 5),
        (None, 0, 5, 5),
    ],
)
def test_empty_or_malformed_boxes_are_errors(box: object) -> None:
    with pytest.raises(EvaluationError):
        box_coverage(np.zeros((10, 10), dtype=bool), box)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "mask",
    [
        np.zeros((10, 10), dtype=np.uint8),
        np.zeros((10, 10, 3), dtype=bool),
        np.zeros((10,), dtype=bool),
        np.zeros((0, 10), dtype=bool),
        [[True, False]],
        None,
    ],
    ids=["uint8", "3-D", "1-D", "empty", "list", "None"],
)
def test_masks_of_the_wrong_type_or_shape_are_errors(mask: object) -> None:
    with pytest.raises(EvaluationError):
        box_coverage(mask, (0, 0, 1, 1))  # type: ignore[arg-type]


def test_a_mask_must_match_the_frame_it_is_judged_against() -> None:
    from agent.anonymizer.evaluation import check_mask

    with pytest.raises(EvaluationError, match="does not match"):
        check_mask(np.zeros((10, 12), dtype=bool), (12, 10))


def test_instances_check_their_class_and_box() -> None:
    with pytest.raises(EvaluationError, match="class"):
        Instance((0, 0, 5, 5), "dog")
    with pytest.raises(EvaluationError):
        Instance((0, 0, 0, 5), "person")


# -- size buckets and recall ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "height", "bucket", "goal"),
    [
        ("person", 15, "tiny", False),
        ("person", 16, "small", False),
        ("person", 47, "small", False),
        ("person", 48, "medium", True),
        ("person", 95, "medium", True),
        ("person", 96, "large", True),
        ("vehicle", 31, "small", False),
        ("vehicle", 32, "medium", True),
    ],
)
def test_size_buckets_follow_the_goal_sizes(cls: str, height: int, bucket: str, goal: bool) -> None:
    assert size_bucket(cls, height) == bucket
    assert in_goal(cls, height) is goal


def test_recall_per_class_and_size_counts_by_hand() -> None:
    # A 200x200 frame; the mask covers the left half (x < 100).
    mask = mask_with((200, 200), (0, 0, 100, 200))
    instances = [
        Instance((10, 0, 20, 50), "person"),  # medium, covered
        Instance((90, 0, 20, 60), "person"),  # medium, half covered -> exposed
        Instance((10, 50, 30, 100), "person"),  # large, covered
        Instance((150, 0, 10, 20), "person"),  # small, exposed (not in the goal)
        Instance((150, 100, 5, 10), "person", ignore=True),  # left out
        Instance((0, 150, 60, 40), "vehicle", subclass="car"),  # medium vehicle, covered
        Instance((120, 150, 70, 40), "vehicle", crowd=True),  # left out
    ]
    table = recall_table(judge(mask, instances)).as_dict()
    person = table["person"]
    assert person["by_size"]["medium"] == {"anonymized": 1, "total": 2, "recall": 0.5}
    assert person["by_size"]["large"] == {"anonymized": 1, "total": 1, "recall": 1.0}
    assert person["by_size"]["small"] == {"anonymized": 0, "total": 1, "recall": 0.0}
    assert person["goal"] == {"anonymized": 2, "total": 3, "recall": 2 / 3}
    assert person["ignored"] == 1
    assert table["vehicle"]["goal"] == {"anonymized": 1, "total": 1, "recall": 1.0}
    assert table["vehicle"]["crowd"] == 1


def test_no_instances_is_no_recall_rather_than_perfect_recall() -> None:
    table = recall_table([]).as_dict()
    assert table["person"]["goal"] == {"anonymized": 0, "total": 0, "recall": None}


# -- video: frame and track leaks -------------------------------------------------------------------------


def frame(*tracks: tuple[int, float], height: int = 60) -> list[Judgement]:
    """One frame's judgements: (track id, coverage) of goal-size people."""
    return [Judgement(Instance((0, 0, 20, height), "person", track=t), c, height) for t, c in tracks]


def test_frame_leak_rate_counts_frames_with_any_exposed_instance() -> None:
    frames = [
        frame((1, 1.0), (2, 1.0)),
        frame((1, 1.0), (2, 0.5)),  # leaks
        frame(),  # nobody there: not counted
        frame((1, 0.94)),  # leaks
        frame((1, 0.2), height=30),  # only a small person: not counted
    ]
    assert frame_leak_rate(frames).as_dict() == {"leaking": 2, "total": 3, "rate": 2 / 3}


def test_one_exposed_frame_makes_a_track_leak() -> None:
    frames = [frame((1, 1.0), (2, 1.0), (3, 0.1))]
    frames += [frame((1, 1.0), (2, 1.0), (3, 0.1)) for _ in range(8)]
    frames += [frame((1, 0.9), (2, 1.0))]  # track 1 is exposed once, in its last frame
    exposures = {e.track: e for e in track_exposures(frames)}
    assert exposures[1].leaked and exposures[1].exposed_frames == 1 and exposures[1].judged_frames == 10
    assert exposures[1].min_coverage == 0.9
    assert not exposures[2].leaked
    assert exposures[3].exposed_frames == 9 and exposures[3].longest_exposed_run == 9
    assert track_leak_rate(frames).as_dict() == {"leaking": 2, "total": 3, "rate": 2 / 3}


def test_the_longest_exposed_run_is_broken_by_a_covered_or_absent_frame() -> None:
    frames = [frame((1, 0.0)), frame((1, 0.0)), frame((1, 1.0)), frame((1, 0.0)), frame(), frame((1, 0.0))]
    (exposure,) = track_exposures(frames)
    assert exposure.exposed_frames == 4 and exposure.longest_exposed_run == 2


def test_tracks_only_seen_small_or_ignored_are_not_judged() -> None:
    ignored = Judgement(Instance((0, 0, 20, 60), "person", ignore=True, track=7), 0.0, 60)
    frames = [frame((5, 0.0), height=20), [ignored]]
    assert track_leak_rate(frames).as_dict() == {"leaking": 0, "total": 0, "rate": None}


def test_a_track_twice_in_one_frame_is_a_labeling_error() -> None:
    with pytest.raises(EvaluationError, match="twice"):
        track_exposures([frame((1, 1.0), (1, 1.0))])


# -- over-masking ----------------------------------------------------------------------------------------


def test_over_masking_counts_masked_pixels_outside_every_box() -> None:
    mask = mask_with((10, 10), (0, 0, 4, 4), (8, 8, 2, 2))  # 16 + 4 masked pixels
    result = over_masking(mask, [(0, 0, 4, 4)])  # the first square is a labeled box
    assert result.as_dict() == {"masked_outside_px": 4, "outside_px": 84, "ratio": 4 / 84}


def test_over_masking_with_a_margin_forgives_dilation() -> None:
    mask = mask_with((10, 10), (1, 1, 4, 4))  # the box (2, 2, 2, 2) dilated by one pixel
    assert over_masking(mask, [(2, 2, 2, 2)]).masked_outside == 12
    assert over_masking(mask, [(2, 2, 2, 2)], margin=1).as_dict() == {
        "masked_outside_px": 0,
        "outside_px": 84,
        "ratio": 0.0,
    }


def test_over_masking_of_a_negative_image_is_its_masked_share_and_sums_over_images() -> None:
    a = over_masking(mask_with((10, 10), (0, 0, 5, 2)), [])
    b = over_masking(np.zeros((10, 10), dtype=bool), [])
    assert a.ratio == 0.1
    assert (a + b).as_dict() == {"masked_outside_px": 10, "outside_px": 200, "ratio": 0.05}


def test_over_masking_ignores_boxes_off_the_frame_and_rejects_bad_input() -> None:
    mask = mask_with((10, 10), (0, 0, 10, 10))
    assert over_masking(mask, [(50, 50, 5, 5)]).ratio == 1.0
    assert over_masking(mask, [(0, 0, 10, 10)]).ratio is None  # nothing outside the boxes
    with pytest.raises(EvaluationError):
        over_masking(mask, [(0, 0, -1, 5)])
    with pytest.raises(EvaluationError):
        over_masking(mask, [], margin=-1)
    with pytest.raises(EvaluationError):
        over_masking(mask.astype(np.uint8), [])  # type: ignore[arg-type]
