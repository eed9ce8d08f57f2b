"""The capture policy: defects, errors, near-threshold scores, shadow disagreements, seeded good sample."""

from __future__ import annotations

from typing import Literal

import pytest
from edgeinspect.core.messages import Prediction, Result, Verdict
from edgeinspect_inference.worker.capture import CapturePolicy


def result(
    verdict: Verdict,
    *scores: float,
    frame_id: str = "f1",
    shadow_label: Literal["ok", "defect"] | None = None,
) -> Result:
    preds = [
        Prediction("m", "1", "classification", "defect" if s >= 0.5 else "ok", s, 0.5, 1.0) for s in scores
    ]
    if shadow_label is not None:
        preds.append(Prediction("m", "2", "classification", shadow_label, 0.6, 0.5, 1.0, role="shadow"))
    return Result(frame_id, "l1", 1, verdict, max(scores, default=0.0), preds, 5.0)


NO_SAMPLE = CapturePolicy(good_fraction=0.0, band=0.05, seed=1)


def test_every_error_is_captured() -> None:
    assert NO_SAMPLE.reasons(result("error")) == ["error"]


def test_every_defect_is_captured() -> None:
    assert NO_SAMPLE.reasons(result("defect", 0.9)) == ["defect"]


@pytest.mark.parametrize(
    ("score", "captured"), [(0.44, False), (0.46, True), (0.5, True), (0.54, True), (0.56, False)]
)
def test_scores_within_the_band_around_the_threshold_are_captured(score: float, captured: bool) -> None:
    verdict: Verdict = "defect" if score >= 0.5 else "ok"
    reasons = NO_SAMPLE.reasons(result(verdict, score))
    assert ("near_threshold" in reasons) is captured


def test_shadow_disagreement_is_captured_even_for_a_good_part() -> None:
    assert NO_SAMPLE.reasons(result("ok", 0.1, shadow_label="defect")) == ["shadow_disagreement"]
    assert NO_SAMPLE.reasons(result("ok", 0.1, shadow_label="ok")) == []


def test_good_parts_are_sampled_at_the_configured_fraction() -> None:
    policy = CapturePolicy(good_fraction=0.1, band=0.0, seed=7)
    picked = [i for i in range(10_000) if policy.reasons(result("ok", 0.1, frame_id=f"f{i}"))]
    assert 900 <= len(picked) <= 1100
    assert all(policy.reasons(result("ok", 0.1, frame_id=f"f{i}")) == ["sample_good"] for i in picked[:5])


def test_sample_is_a_function_of_seed_and_frame_id() -> None:
    a = CapturePolicy(good_fraction=0.3, seed=1)
    b = CapturePolicy(good_fraction=0.3, seed=1)
    c = CapturePolicy(good_fraction=0.3, seed=2)
    ids = [f"frame-{i}" for i in range(200)]
    picks_a = [i for i in ids if a.sampled(i)]
    assert picks_a == [i for i in reversed(ids) if b.sampled(i)][::-1]  # order of arrival does not matter
    assert picks_a != [i for i in ids if c.sampled(i)]


def test_fraction_bounds() -> None:
    assert not CapturePolicy(good_fraction=0.0).sampled("x")
    assert CapturePolicy(good_fraction=1.0).sampled("x")
