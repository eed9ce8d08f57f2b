"""The bandwidth limit, measured in bytes over simulated time (never wall-clock)."""

from __future__ import annotations

import threading

import pytest
from edgeinspect_uploader.throttle import (
    ManualClock,
    RealClock,
    ThrottledProgress,
    TokenBucket,
    UploadCancelled,
)


def test_unlimited_bucket_never_waits() -> None:
    clock = ManualClock()
    bucket = TokenBucket(0, 1024, clock)
    bucket.consume(10**9)
    assert clock.slept == 0
    assert bucket.consumed == 10**9


@pytest.mark.parametrize("chunk", [1_000, 65_536, 1_000_000])
def test_bytes_over_any_window_stay_within_rate_times_time_plus_burst(chunk: int) -> None:
    rate, burst = 100_000, 25_000
    clock = ManualClock()
    bucket = TokenBucket(rate, burst, clock)
    sent = 0
    while sent < 5_000_000:
        bucket.consume(chunk)
        sent += chunk
        # after paying for a chunk the caller may have sent it: check the bound at every step
        assert sent <= rate * clock.monotonic() + burst + chunk
    elapsed = clock.monotonic()
    assert sent / elapsed <= rate * 1.01 + (burst + chunk) / elapsed
    assert elapsed <= (sent - burst) / rate + chunk / rate  # no needless waiting either


def test_idle_time_refills_only_up_to_the_burst() -> None:
    clock = ManualClock()
    bucket = TokenBucket(1_000, 500, clock)
    clock.advance(3600)
    bucket.consume(500)
    assert clock.slept == 0
    bucket.consume(1_000)
    assert clock.slept == pytest.approx(1.0)


def test_threads_share_one_budget() -> None:
    rate = 50_000
    clock = ManualClock()
    bucket = TokenBucket(rate, 1, clock)

    def send() -> None:
        for _ in range(100):
            bucket.consume(1_000)

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bucket.consumed == 400_000
    # the waits of several threads overlap, as in real time: the clock ends where the budget says
    assert clock.monotonic() == pytest.approx((400_000 - 1) / rate)


def test_progress_callbacks_pay_only_the_new_bytes() -> None:
    clock = ManualClock()
    bucket = TokenBucket(1_000, 1, clock)
    progress = ThrottledProgress(bucket)
    for total in (100, 250, 250, 1000):
        progress(total)
    assert bucket.consumed == 1000


def test_a_stop_request_interrupts_the_wait() -> None:
    stop = threading.Event()
    stop.set()
    bucket = TokenBucket(10, 1, RealClock(stop))
    with pytest.raises(UploadCancelled):
        bucket.consume(10_000)  # would wait ~1000 s
