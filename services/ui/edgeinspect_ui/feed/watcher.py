"""Keeps the model table fresh: asks the agent every few seconds (sooner after a deployment event)
and pushes the table to open pages only when it changed."""

from __future__ import annotations

import threading
from collections.abc import Callable

from edgeinspect.core.observability import get_logger

from edgeinspect_ui.api.schemas import ModelsOut
from edgeinspect_ui.feed.inventory import ModelInventory
from edgeinspect_ui.metrics import UiMetrics

log = get_logger(__name__)


class ModelWatcher:
    """A thread of its own, so a slow agent never delays the results feed."""

    def __init__(
        self,
        inventory: ModelInventory,
        period_s: float,
        publish: Callable[[ModelsOut], None],
        metrics: UiMetrics,
    ) -> None:
        self._inventory = inventory
        self._period_s = period_s
        self._publish = publish
        self._metrics = metrics
        self._lock = threading.Lock()
        self._asking = threading.Lock()  # one conversation with the agent at a time
        self._current: ModelsOut | None = None
        self._poke = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ui-models", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._poke.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._inventory.close()

    def poke(self) -> None:
        """Refresh soon (a job or model event arrived)."""
        self._poke.set()

    def current(self) -> ModelsOut:
        """The latest table; asks the agent now if no refresh has run yet."""
        with self._lock:
            current = self._current
        return current if current is not None else self.refresh()

    def refresh(self) -> ModelsOut:
        with self._asking:
            snapshot = self._inventory.snapshot()
        self._metrics.agent_up.set(1 if snapshot.agent == "ok" else 0)
        with self._lock:
            changed = snapshot != self._current
            self._current = snapshot
        if changed:
            self._publish(snapshot)
        return snapshot

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.refresh()
            except Exception as exc:  # never let one bad reply stop the table from refreshing
                log.exception("models_refresh_failed", error=str(exc))
            self._poke.wait(self._period_s)
            self._poke.clear()
