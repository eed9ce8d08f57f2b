"""Waiting for a model: frames are held, not judged as errors, while the line's models are missing.

Two situations look the same to the worker: no model was ever deployed (a new line), and the agent
restarted and the model manager has not restored the aliases yet (about ten seconds). Either way
the head frame is *held* (left pending, judged again a moment later) for at most
``model_wait_s`` from the moment the line found itself without a model. Within that bound nothing
is lost and nothing is judged; after it, the frames that still have no model become the explicit
outcome ``verdict=no_model`` (counted in ``ei_worker_frames_total{verdict="no_model"}``, never an
error), so a line without a model keeps moving and says why.

The line is "waiting" from the first frame without a model until a frame is judged by every alias
the worker has seen loaded: one log line on entering, one on leaving, never one per frame.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from edgeinspect.core.errors import EdgeInspectError
from edgeinspect.core.observability import get_logger
from prometheus_client import CollectorRegistry, Counter, Gauge

log = get_logger(__name__)


class ModelPending(EdgeInspectError):
    """The line's model is missing but may come back: hold the frame and judge it again shortly."""


class ModelWait:
    """The line's waiting state; thread-safe (frames are judged on several threads)."""

    def __init__(
        self,
        line: str,
        bound_s: float,
        registry: CollectorRegistry,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.line = line
        self.bound_s = bound_s
        self._clock = clock
        self._lock = threading.Lock()
        self._since: float | None = None
        self._missing: tuple[str, ...] = ()
        self._seen: set[str] = set()
        self.state = Gauge(
            "ei_worker_waiting_for_model", "1 while the line has no model for an alias it needs",
            ["line"], registry=registry,
        )  # fmt: skip
        self.held = Gauge(
            "ei_worker_waiting_frames", "frames held (pending, not judged) until a model is back",
            ["line"], registry=registry,
        )  # fmt: skip
        self.wait_seconds = Counter(
            "ei_worker_model_wait_seconds_total", "seconds the line spent waiting for a model", ["line"],
            registry=registry,
        )  # fmt: skip
        self.state.labels(line).set(0)
        self.held.labels(line).set(0)

    @property
    def waiting(self) -> bool:
        return self._since is not None

    def seen(self, aliases: Iterable[str]) -> None:
        """Aliases that judged a frame: from now on their absence means "coming back", worth a wait."""
        with self._lock:
            self._seen.update(aliases)

    def returning(self, missing: Iterable[str]) -> list[str]:
        """The missing aliases that were loaded before (a restart, not a line never given that model)."""
        with self._lock:
            return [alias for alias in missing if alias in self._seen]

    def hold(self, missing: Iterable[str]) -> bool:
        """Enter (or stay in) the waiting state; True while the frame should be held, False after it."""
        now = self._clock()
        with self._lock:
            if self._since is None:
                self._since = now
                self._missing = tuple(missing)
                self.state.labels(self.line).set(1)
                log.info(
                    "waiting_for_model", line=self.line, missing=list(self._missing), bound_s=self.bound_s
                )
            return now - self._since < self.bound_s

    def held_frames(self, count: int, waited_s: float) -> None:
        """The loop reports how many frames it holds and how long it just waited for them."""
        self.held.labels(self.line).set(count)
        if waited_s > 0:
            self.wait_seconds.labels(self.line).inc(waited_s)

    def clear(self) -> None:
        """Every needed model answered: leave the waiting state (logged once)."""
        if self._since is None:
            return
        with self._lock:
            if self._since is None:
                return
            waited = self._clock() - self._since
            self._since = None
            self.state.labels(self.line).set(0)
            self.held.labels(self.line).set(0)
        log.info(
            "model_available", line=self.line, waited_s=round(waited, 3), was_missing=list(self._missing)
        )
