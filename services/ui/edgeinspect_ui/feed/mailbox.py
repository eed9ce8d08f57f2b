"""A coalescing mailbox between the feed thread and one SSE connection.

The feed never waits for a browser: it overwrites the pending live result (a slow client skips
intermediate frames instead of falling behind), keeps every defect up to a bound (the strip must not
miss one), and keeps only the newest stats, status, lines and model table.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass, field

from pydantic import BaseModel

from edgeinspect_ui.api.schemas import ResultOut

MAX_PENDING_DEFECTS = 32
# the order a batch is sent in: context first, the live frame last
ORDER = ("status", "lines", "models", "stats", "defect", "result")


@dataclass
class Pending:
    """What is waiting to be sent; ``dropped`` counts live results overwritten before sending."""

    latest: dict[str, BaseModel] = field(default_factory=dict)
    defects: deque[ResultOut] = field(default_factory=lambda: deque(maxlen=MAX_PENDING_DEFECTS))
    dropped: int = 0


class Mailbox:
    """Thread-safe producer side (``offer``), asyncio consumer side (``wait`` + ``drain``)."""

    def __init__(self, line: str, loop: asyncio.AbstractEventLoop) -> None:
        self.line = line
        self._loop = loop
        self._lock = threading.Lock()
        self._pending = Pending()
        self._ready = asyncio.Event()
        self.closed = False

    def offer(self, kind: str, payload: BaseModel) -> None:
        """Queue an event from any thread; a newer one of the same kind replaces the older."""
        with self._lock:
            if kind == "defect" and isinstance(payload, ResultOut):
                self._pending.defects.append(payload)
            else:
                if kind == "result" and kind in self._pending.latest:
                    self._pending.dropped += 1
                self._pending.latest[kind] = payload
        self._wake()

    def _wake(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._ready.set)
        except RuntimeError:  # the connection's loop is gone: the client left
            self.closed = True

    async def wait(self, timeout: float) -> bool:
        """Wait until something is pending (True) or ``timeout`` passes (False)."""
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def drain(self) -> tuple[list[tuple[str, BaseModel]], int]:
        """Everything pending, in ``ORDER``, and how many live results were skipped."""
        with self._lock:
            pending, self._pending = self._pending, Pending()
            self._ready.clear()
        batch: list[tuple[str, BaseModel]] = []
        for kind in ORDER:
            if kind == "defect":
                batch.extend(("defect", d) for d in pending.defects)
            elif kind in pending.latest:
                batch.append((kind, pending.latest[kind]))
        return batch, pending.dropped
