"""Lifecycle helpers: backoff grows and caps; retry_until retries, and stops when asked."""

from __future__ import annotations

import threading

from edgeinspect.core.lifecycle import Backoff, retry_until


def test_backoff_grows_then_caps() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0, seed=1)
    delays = [backoff.next_delay() for _ in range(8)]
    assert delays[0] <= 1.0 and all(d <= 8.0 for d in delays) and max(delays) >= 4.0
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_retry_until_returns_after_failures() -> None:
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionError("down")
        return "up"

    stop = threading.Event()
    result = retry_until(flaky, stop, what="flaky", errors=(ConnectionError,), backoff=Backoff(0.001, 0.002))
    assert result == "up" and calls["n"] == 3


def test_retry_until_gives_up_when_stopped() -> None:
    stop = threading.Event()
    stop.set()
    assert retry_until(lambda: 1 / 0, stop, what="never", errors=(ZeroDivisionError,)) is None
