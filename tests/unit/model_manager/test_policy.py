"""Pure policies: default aliases, version order, which versions to delete, when to roll back."""

from __future__ import annotations

import pytest
from edgeinspect_model_manager.policy import (
    Limits,
    Observation,
    breach,
    default_alias,
    is_newer,
    versions_to_delete,
)


def test_default_alias_follows_the_task() -> None:
    assert default_alias("classification") == "defect-cls"
    assert default_alias("segmentation") == "defect-seg"
    assert default_alias("multitask") == "defect-mt"
    assert default_alias("anomaly") == "defect-seg"  # good parts only: served where a segmenter is
    with pytest.raises(ValueError, match="name one"):
        default_alias("detection")


@pytest.mark.parametrize(
    ("candidate", "current"),
    [("10", "9"), ("1.10", "1.9"), ("2.0", "1.99"), ("1.0-rc2", "1.0-rc1"), ("1.0", "1")],
)
def test_versions_are_compared_as_versions_not_as_text_or_floats(candidate: str, current: str) -> None:
    assert is_newer(candidate, current)
    assert not is_newer(current, candidate)


def test_equal_versions_are_not_newer() -> None:
    assert not is_newer("7", "7")


def test_the_oldest_versions_go_first_by_version_order() -> None:
    assert versions_to_delete(["9", "10", "11"], protected=["11"], keep=2) == ["9"]


def test_nothing_is_deleted_within_the_limit() -> None:
    assert versions_to_delete(["1", "2"], protected=[], keep=3) == []


def test_aliased_versions_are_never_deleted_even_beyond_the_limit() -> None:
    assert versions_to_delete(["1", "2", "3"], protected=["1", "2", "3"], keep=1) == []
    assert versions_to_delete(["1", "2", "3"], protected=["1", "3"], keep=1) == ["2"]


def test_keep_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        versions_to_delete(["1"], [], keep=0)


LIMITS = Limits(max_error_rate=0.05, max_p99_ms=50.0, min_requests=20)


def test_too_few_requests_are_not_judged() -> None:
    assert breach(Observation(requests=19, errors=19, p99_ms=1000.0), LIMITS) is None


def test_an_error_rate_above_the_limit_is_a_breach() -> None:
    reason = breach(Observation(requests=40, errors=10, p99_ms=1.0), LIMITS)
    assert reason is not None and "error rate 0.25 (10 of 40 requests)" in reason


def test_an_error_rate_at_the_limit_is_fine() -> None:
    assert breach(Observation(requests=100, errors=5, p99_ms=1.0), LIMITS) is None


def test_a_slow_p99_is_a_breach_only_when_checked() -> None:
    slow = Observation(requests=50, errors=0, p99_ms=80.0)
    reason = breach(slow, LIMITS)
    assert reason is not None and "p99 latency 80.0 ms" in reason
    assert breach(slow, Limits(max_error_rate=0.05, max_p99_ms=0.0, min_requests=20)) is None
