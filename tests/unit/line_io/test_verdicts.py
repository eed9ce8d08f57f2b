"""The reject rule, the fail-safe and the window, exactly (pure functions, no clock)."""

from __future__ import annotations

import pytest
from edgeinspect.core.messages import Prediction, Result
from edgeinspect_line_io.verdicts import MS, RejectTiming, decide, no_verdict

TIMING = RejectTiming.from_ms(delay_ms=500, width_ms=50, tolerance_ms=5, fail_safe="reject")
CAPTURE = 1_000_000_000_000


def _result(verdict: str, *, part_id: str = "4711", predictions: list[Prediction] | None = None) -> Result:
    return Result(
        frame_id="f1",
        line="l1",
        ts_ns=CAPTURE,
        verdict=verdict,  # type: ignore[arg-type]
        score=0.9,
        predictions=predictions or [],
        e2e_ms=3.0,
        part_id=part_id,
    )


@pytest.mark.parametrize(
    ("verdict", "fail_safe", "action", "reason"),
    [
        ("defect", "reject", "reject", "defect"),
        ("ok", "reject", "pass", "ok"),
        ("error", "reject", "reject", "fail_safe:error"),
        ("error", "pass", "pass", "fail_safe:error"),
        ("defect", "pass", "reject", "defect"),
    ],
)
def test_the_verdict_and_the_fail_safe_decide_the_action(
    verdict: str, fail_safe: str, action: str, reason: str
) -> None:
    timing = RejectTiming.from_ms(500, 50, 5, fail_safe)  # type: ignore[arg-type]
    part = decide(_result(verdict), timing, CAPTURE + 10 * MS)
    assert (part.action, part.reason, part.late) == (action, reason, False)
    assert part.part_id == "4711" and part.gate_ns == CAPTURE + 500 * MS


def test_a_verdict_after_the_window_is_late_and_never_actuates() -> None:
    on_time = decide(_result("defect"), TIMING, CAPTURE + 505 * MS)
    late = decide(_result("defect"), TIMING, CAPTURE + 505 * MS + 1)
    assert on_time.actuates and not on_time.late
    assert late.late and not late.actuates and late.action == "reject"


def test_defect_area_box_and_model_versions_come_from_the_primary_models() -> None:
    predictions = [
        Prediction("cls", "3", "classification", "defect", 0.9, 0.5, 1.0),
        Prediction(
            "seg", "7", "segmentation", "defect", 0.8, 0.5, 2.0, defect_area_px=120, bbox=(1, 2, 30, 40)
        ),
        Prediction("seg", "8", "segmentation", "ok", 0.1, 0.5, 2.0, role="shadow", defect_area_px=5),
    ]
    part = decide(_result("defect", predictions=predictions), TIMING, CAPTURE)
    assert (part.defect_area_px, part.bbox, part.model_version) == (120, (1, 2, 30, 40), "cls@3+seg@7")


def test_no_verdict_follows_the_fail_safe() -> None:
    part = no_verdict("f2", "99", "l1", CAPTURE, TIMING, CAPTURE + 499 * MS)
    assert (part.verdict, part.action, part.reason, part.actuates) == (
        "none",
        "reject",
        "fail_safe:no_verdict",
        True,
    )
