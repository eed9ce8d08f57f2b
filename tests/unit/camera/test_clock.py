"""Pacing by deadlines, checked with a clock that moves only when slept on (no wall time)."""

from __future__ import annotations

import itertools

import pytest
from edgeinspect_camera.clock import Pacer, RateMeter

from tests.unit.camera.helpers import FakeClock


def _tick_times(pacer: Pacer, clock: FakeClock, frames: int, work_s: float = 0.0) -> list[float]:
    times = []
    for _ in range(frames):
        pacer.wait()
        times.append(clock.monotonic())
        clock.advance(work_s)  # capture + encode time
    return times


def test_frames_are_due_exactly_one_period_apart() -> None:
    clock = FakeClock()
    times = _tick_times(Pacer(25.0, clock), clock, 100)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == pytest.approx([0.04] * 99)


def test_work_time_is_absorbed_so_the_rate_does_not_drift() -> None:
    clock = FakeClock()
    times = _tick_times(Pacer(10.0, clock), clock, 50, work_s=0.03)
    assert times[-1] - times[0] == pytest.approx(4.9)
    assert sorted({round(s, 6) for s in clock.sleeps}) == [0.03, 0.07]  # work, then the rest of the period


def test_a_slightly_late_frame_is_made_up_by_a_shorter_wait() -> None:
    clock = FakeClock()
    pacer = Pacer(10.0, clock)
    pacer.wait()
    clock.advance(0.15)  # one frame 50 ms late
    pacer.wait()
    start = clock.monotonic()
    pacer.wait()
    assert clock.monotonic() - start == pytest.approx(0.05)


def test_a_long_stall_restarts_the_schedule_instead_of_bursting() -> None:
    clock = FakeClock()
    pacer = Pacer(10.0, clock)
    pacer.wait()
    clock.advance(5.0)
    times = _tick_times(pacer, clock, 5)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps == pytest.approx([0.1] * 4)


def test_fps_zero_never_waits() -> None:
    clock = FakeClock()
    times = _tick_times(Pacer(0.0, clock), clock, 10)
    assert times == [times[0]] * 10


def test_reset_starts_a_fresh_schedule() -> None:
    clock = FakeClock()
    pacer = Pacer(2.0, clock)
    pacer.wait()
    pacer.reset()
    start = clock.monotonic()
    pacer.wait()
    assert clock.monotonic() == start


def test_rate_meter_measures_recent_frames_per_second() -> None:
    meter = RateMeter(window=10)
    assert meter.tick(0.0) == 0.0
    rate = 0.0
    for i in range(1, 20):
        rate = meter.tick(i * 0.05)
    assert rate == pytest.approx(20.0)
