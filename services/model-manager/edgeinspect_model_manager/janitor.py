"""Delayed clean-up: unload a replaced version after the grace period, then trim old versions.

Why delayed: right after an alias moves, workers may still hold requests on the old version and the
UI may still list it; a short grace lets them drain. Why a thread of its own: the job thread must not
sleep through the grace while the next job waits. On shutdown every pending task runs at once (the
agent keeps serving after the manager stops, and should not keep a version nobody uses).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable

from edgeinspect.core.observability import get_logger

log = get_logger(__name__)
Task = Callable[[], None]


class Janitor:
    """Runs ``schedule``d tasks after their delay, one at a time, on one daemon thread."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, str, Task]] = []
        self._ids = itertools.count()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="janitor", daemon=True)

    def start(self) -> Janitor:
        self._thread.start()
        return self

    def schedule(self, delay_s: float, what: str, task: Task) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + delay_s, next(self._ids), what, task))
            self._cond.notify_all()

    def pending(self) -> list[str]:
        with self._cond:
            return [what for _, _, what, _ in sorted(self._heap)]

    def close(self, timeout: float = 30.0) -> None:
        """Run every pending task now, then stop the thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _next(self) -> tuple[str, Task] | None:
        with self._cond:
            while True:
                if self._heap and (self._closed or self._heap[0][0] <= time.monotonic()):
                    _, _, what, task = heapq.heappop(self._heap)
                    return what, task
                if self._closed:
                    return None
                timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                self._cond.wait(timeout)

    def _run(self) -> None:
        while (item := self._next()) is not None:
            what, task = item
            try:
                task()
            except Exception as exc:  # a failed clean-up is retried by the next job's trim
                log.exception("janitor_task_failed", task=what, error=str(exc))
