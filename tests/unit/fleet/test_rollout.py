"""Wave planning and wave verdicts (pure functions)."""

from __future__ import annotations

import pytest
from edgeinspect_cloud.fleet import FleetError, Rollout
from edgeinspect_cloud.fleet.records import parse_wave_pct
from edgeinspect_cloud.fleet.rollout import judge_wave, plan_waves
from hypothesis import given
from hypothesis import strategies as st


def test_waves_are_near_equal_and_the_first_is_never_the_smallest() -> None:
    assert plan_waves(["a", "b", "c", "d", "e"], 2) == [["a", "b", "c"], ["d", "e"]]
    assert plan_waves(["a", "b"], 5) == [["a"], ["b"]]
    assert plan_waves(["a", "b", "c"], 1) == [["a", "b", "c"]]


@given(st.lists(st.text(min_size=1), min_size=1, max_size=40, unique=True), st.integers(1, 10))
def test_waves_keep_every_thing_once_in_order(things: list[str], waves: int) -> None:
    plan = plan_waves(things, waves)
    assert [t for batch in plan for t in batch] == things
    assert len(plan) == min(waves, len(things)) and all(plan)
    assert max(map(len, plan)) - min(map(len, plan)) <= 1


@pytest.mark.parametrize(
    ("statuses", "threshold", "decision"),
    [
        (["SUCCEEDED", "FAILED"], 50, "next_wave"),  # 50% is not more than 50%
        (["FAILED", "FAILED"], 50, "abort"),
        (["FAILED", "QUEUED", "QUEUED"], 0, "abort"),  # decided before the rest of the wave ends
        (["FAILED", "QUEUED", "QUEUED"], 50, "wait"),
        (["TIMED_OUT", "REJECTED", "SUCCEEDED"], 60, "abort"),
        (["FAILED", "FAILED"], None, "next_wave"),  # no threshold: never abort
        (["SUCCEEDED", "CANCELED"], 0, "next_wave"),  # canceled is not a failure
    ],
)
def test_wave_verdicts(statuses: list[str], threshold: float | None, decision: str) -> None:
    assert judge_wave(statuses, 0, 1, Rollout(2, threshold)).decision == decision


def test_the_last_wave_completes_the_job() -> None:
    assert judge_wave(["SUCCEEDED"], 1, 1, Rollout(2, 10)).decision == "complete"


@pytest.mark.parametrize(("waves", "threshold"), [(0, None), (1, -1), (1, 100)])
def test_bad_rollouts_are_refused(waves: int, threshold: float | None) -> None:
    with pytest.raises(FleetError):
        Rollout(waves, threshold)


def test_wave_percentages_make_a_canary_then_growing_waves() -> None:
    things = [f"t{i}" for i in range(1000)]
    waves = plan_waves(things, 4, (1, 10, 50, 100))
    assert [len(w) for w in waves] == [10, 90, 400, 500]
    assert [t for w in waves for t in w] == things
    assert [len(w) for w in plan_waves(things[:5], 4, (1, 10, 50, 100))] == [1, 2, 2]


def test_wave_percentages_set_the_number_of_waves_and_are_checked() -> None:
    assert Rollout(wave_pct=(1, 10, 50, 100)).waves == 4
    assert parse_wave_pct("1, 10,50,100") == (1.0, 10.0, 50.0, 100.0)
    for bad in ("10,5,100", "1,10,50", "0,100", "x,100", ""):
        with pytest.raises(FleetError):
            parse_wave_pct(bad)
