"""The last deployment job per model and the device's state, from ``ei:events``.

The model manager publishes ``job_status`` (detail: job_id, status, model, version, reason) and
``device_state`` events; the model table shows the newest of each beside the models they concern.
"""

from __future__ import annotations

import threading

from edgeinspect.core.messages import Event

from edgeinspect_ui.api.schemas import JobOut
from edgeinspect_ui.feed.views import job_out

JOB_STATUS = "job_status"
DEVICE_STATE = "device_state"
# events after which the model table is probably different: ask the agent again right away
MODEL_CHANGING = frozenset(
    {JOB_STATUS, "model_loaded", "model_unloaded", "alias_set", "shadow_set", "swap", "threshold_set"}
)


class JobBoard:
    """Thread-safe: the feed thread writes, the model watcher and API handlers read."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_version: dict[tuple[str, str], JobOut] = {}
        self._last: JobOut | None = None
        self._device_state: str | None = None

    def update(self, event: Event) -> bool:
        """Record a job or device event; True when it may change the model table."""
        if event.type == DEVICE_STATE:
            state = event.detail.get("state") or event.detail.get("status") or ""
            with self._lock:
                self._device_state = str(state) if state else None
            return True
        if event.type != JOB_STATUS:
            return event.type in MODEL_CHANGING
        job = job_out(event)
        if job is None:
            return False
        with self._lock:
            if self._last is None or job.ts_ns >= self._last.ts_ns:
                self._last = job
            if job.model:
                key = (job.model, job.version)
                old = self._by_version.get(key)
                if old is None or job.ts_ns >= old.ts_ns:
                    self._by_version[key] = job
        return True

    def for_version(self, name: str, version: str) -> JobOut | None:
        """The newest job that deployed this version (or named the model without a version)."""
        with self._lock:
            exact, loose = self._by_version.get((name, version)), self._by_version.get((name, ""))
        candidates = [job for job in (exact, loose) if job is not None]
        return max(candidates, key=lambda job: job.ts_ns) if candidates else None

    def last(self) -> JobOut | None:
        with self._lock:
            return self._last

    def device_state(self) -> str | None:
        with self._lock:
            return self._device_state
