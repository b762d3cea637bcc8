"""Privacy of the anonymizer on the labeled evaluation set (eval/, see docs/privacy-evaluation.md).

    python tests/bench/bench_privacy.py [--models-dir models] [--labels eval/labels.json]

Runs the real anonymizer (models verified against the signed manifest) twice in the same run:
1. as configured by default, and
2. the baseline without hold-over (`hold_frames = 0`), which shows what the hold-over buys on the video;
3. the baseline without the face pass (`face_detection = false`), which shows what it buys on the stills;
and prints privacy recall per class over the goal of 0.95 (the ratio), frame- and track-leak rates,
over-masking and ms per frame. Results go to $BENCH_OUT (default out/bench)/privacy.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from _common import write_result

from agent.anonymizer.eval_cli import (
    DEFAULT_INPAINT_REPORT,
    GOAL_RECALL,
    anonymizer_section,
    build_anonymizer,
    format_summary,
    run_evaluation,
)
from agent.anonymizer.eval_labels import load_labels

REPO = Path(__file__).resolve().parents[2]


def evaluate(labels: Path, models: Path, **overrides: Any) -> dict[str, Any]:
    section = anonymizer_section(None, models).model_copy(update=overrides)
    return run_evaluation(load_labels(labels), build_anonymizer(section), REPO / DEFAULT_INPAINT_REPORT)


def ratios(report: dict[str, Any]) -> dict[str, float | None]:
    """Recall over the goal for every (part, class) the goal checks: >= 1.0 meets it."""
    return {
        c["check"]: (None if c["value"] is None else c["value"] / GOAL_RECALL)
        for c in report["goal"]["checks"]
        if c["check"].endswith("recall")
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--labels", type=Path, default=REPO / "eval/labels.json")
    parser.add_argument("--models-dir", type=Path, default=REPO / "models")
    # `./build.sh bench --quick` passes it to every bench; the evaluation set is fixed, so it runs whole.
    parser.add_argument("--quick", action="store_true", help="accepted; the evaluation always runs in full")
    options = parser.parse_args()

    default = evaluate(options.labels, options.models_dir)
    no_hold = evaluate(options.labels, options.models_dir, hold_frames=0)
    no_faces = evaluate(options.labels, options.models_dir, face_detection=False)
    print(format_summary(default))
    for check, ratio in ratios(default).items():
        print(f"[privacy] {check}: x{ratio:.3f} of the 0.95 goal" if ratio is not None else f"{check}: n/a")
    leak, base = default["video"]["track_leak"], no_hold["video"]["track_leak"]
    frames, base_frames = default["video"]["frame_leak"], no_hold["video"]["frame_leak"]
    print(
        f"[privacy] video with hold-over: track leaks {leak['leaking']}/{leak['total']}, frame leaks "
        f"{frames['leaking']}/{frames['total']}; baseline without hold-over: track leaks "
        f"{base['leaking']}/{base['total']}, frame leaks {base_frames['leaking']}/{base_frames['total']}"
    )
    people, base = (
        default["images"]["recall"]["person"]["goal"],
        no_faces["images"]["recall"]["person"]["goal"],
    )
    print(
        f"[privacy] stills, people >= 48 px: {people['anonymized']}/{people['total']} with the face pass, "
        f"{base['anonymized']}/{base['total']} without it"
    )
    result = {
        "goal_met": default["goal"]["met"],
        "recall_over_goal": ratios(default),
        "default": {k: v for k, v in default.items() if k != "inpainting"},
        "baseline_no_hold_over": {
            "video": {k: no_hold["video"][k] for k in ("recall", "frame_leak", "track_leak", "over_masking")},
            "recall_over_goal": ratios(no_hold),
        },
        "baseline_no_face_pass": {
            "images": {
                k: no_faces["images"][k] for k in ("recall", "over_masking", "over_masking_negatives")
            },
            "recall_over_goal": ratios(no_faces),
        },
        "inpainting": default.get("inpainting"),
    }
    for part in ("images", "video"):
        result["default"][part] = {k: v for k, v in default[part].items() if k != "per_image"}
    print(f"[privacy] results written to {write_result('privacy', result)}")


if __name__ == "__main__":
    main()
