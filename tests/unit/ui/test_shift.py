"""Shift counters: which shift it is, what is counted, fps from arrivals, reset at the next shift."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

from edgeinspect.core.messages import Result, Verdict
from edgeinspect_ui.feed.shift import ShiftCounter, shift_start

STARTS = [time(6), time(14), time(22)]
TZ = timezone(timedelta(hours=1))


def result(verdict: Verdict = "ok", ts_ns: int = 0, e2e_ms: float = 10.0) -> Result:
    return Result(
        frame_id="f", line="l", ts_ns=ts_ns, verdict=verdict, score=0.1, predictions=[], e2e_ms=e2e_ms
    )


class Clock:
    """Settable wall and monotonic clocks, so no test depends on the real time."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.mono = 1000.0

    def wall(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono


def test_shift_start_is_the_latest_start_at_or_before_now() -> None:
    assert shift_start(datetime(2026, 3, 2, 15, 30, tzinfo=TZ), STARTS) == datetime(2026, 3, 2, 14, tzinfo=TZ)
    assert shift_start(datetime(2026, 3, 2, 14, 0, tzinfo=TZ), STARTS) == datetime(2026, 3, 2, 14, tzinfo=TZ)


def test_the_night_shift_started_yesterday() -> None:
    assert shift_start(datetime(2026, 3, 2, 3, 0, tzinfo=TZ), STARTS) == datetime(2026, 3, 1, 22, tzinfo=TZ)


def test_counts_verdicts_and_the_defect_rate() -> None:
    clock = Clock(datetime(2026, 3, 2, 15, tzinfo=TZ))
    counter = ShiftCounter("l", STARTS, now=clock.wall, monotonic=clock.monotonic)
    verdicts: list[Verdict] = ["ok", "defect", "ok", "error"]
    for verdict in verdicts:
        counter.add(result(verdict))
    stats = counter.snapshot()
    assert (stats.inspected, stats.defects, stats.errors) == (4, 1, 1)
    assert stats.defect_rate == 0.25


def test_frames_without_a_model_are_waiting_not_errors_nor_parts() -> None:
    clock = Clock(datetime(2026, 3, 2, 15, tzinfo=TZ))
    counter = ShiftCounter("l", STARTS, now=clock.wall, monotonic=clock.monotonic)
    verdicts: list[Verdict] = ["no_model"] * 180 + ["ok", "defect"]
    for verdict in verdicts:
        counter.add(result(verdict))
    stats = counter.snapshot()
    assert (stats.inspected, stats.defects, stats.errors, stats.waiting) == (2, 1, 0, 180)
    assert stats.defect_rate == 0.5


def test_fps_counts_arrivals_in_the_last_ten_seconds_and_falls_to_zero() -> None:
    clock = Clock(datetime(2026, 3, 2, 15, tzinfo=TZ))
    counter = ShiftCounter("l", STARTS, now=clock.wall, monotonic=clock.monotonic)
    for _ in range(100):  # 20 fps for 5 s
        counter.add(result())
        clock.mono += 0.05
    assert 19.0 <= counter.fps() <= 21.0
    clock.mono += 11
    assert counter.fps() == 0.0


def test_replayed_history_counts_but_not_as_throughput_and_not_before_the_shift() -> None:
    clock = Clock(datetime(2026, 3, 2, 15, tzinfo=TZ))
    counter = ShiftCounter("l", STARTS, now=clock.wall, monotonic=clock.monotonic)
    before = int(datetime(2026, 3, 2, 13, tzinfo=TZ).timestamp() * 1e9)
    during = int(datetime(2026, 3, 2, 14, 30, tzinfo=TZ).timestamp() * 1e9)
    counter.add(result(ts_ns=before), live=False)
    counter.add(result(ts_ns=during), live=False)
    assert counter.inspected == 1 and counter.fps() == 0.0


def test_latency_percentiles_leave_errors_out() -> None:
    clock = Clock(datetime(2026, 3, 2, 15, tzinfo=TZ))
    counter = ShiftCounter("l", STARTS, now=clock.wall, monotonic=clock.monotonic)
    for ms in (10.0, 20.0, 30.0):
        counter.add(result(e2e_ms=ms))
    counter.add(result("error", e2e_ms=5000.0))
    stats = counter.snapshot()
    assert stats.e2e_p50_ms == 20.0 and stats.e2e_p99_ms < 31.0


def test_a_new_shift_resets_the_counters() -> None:
    clock = Clock(datetime(2026, 3, 2, 21, 59, tzinfo=TZ))
    counter = ShiftCounter("l", STARTS, now=clock.wall, monotonic=clock.monotonic)
    counter.add(result("defect"))
    assert not counter.roll()
    clock.now = datetime(2026, 3, 2, 22, 0, 1, tzinfo=TZ)
    assert counter.roll()
    assert counter.snapshot().inspected == 0
    assert counter.start == datetime(2026, 3, 2, 22, tzinfo=TZ)
