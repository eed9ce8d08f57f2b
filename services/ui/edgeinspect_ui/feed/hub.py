"""The one thread that reads Redis for the UI and fans results out to every open page.

One XREAD (blocking, bounded) over every line's results stream and ``ei:events``, whatever the number
of browsers; each browser gets a coalescing ``Mailbox``, so a slow one skips frames instead of
slowing the others or the feed. Redis going away is a state (``status`` event, banner on the page),
retried with backoff; nothing here ever raises into a request handler.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import redis
from edgeinspect.core import names
from edgeinspect.core.errors import MessageError
from edgeinspect.core.lifecycle import Backoff
from edgeinspect.core.messages import Event, Result
from edgeinspect.core.observability import get_logger
from edgeinspect.core.streams import Entry, Streams
from pydantic import BaseModel

from edgeinspect_ui.api.schemas import LinesOut, ResultOut, StatsOut, StatusOut
from edgeinspect_ui.feed.jobs import JobBoard
from edgeinspect_ui.feed.lines import LineBook
from edgeinspect_ui.feed.mailbox import Mailbox
from edgeinspect_ui.feed.views import result_out
from edgeinspect_ui.metrics import UiMetrics
from edgeinspect_ui.settings import UiSettings

log = get_logger(__name__)

READ_BLOCK_MS = 500
READ_COUNT = 500
DISCOVER_EVERY_S = 5.0
STATS_EVERY_S = 1.0
EVENTS_BACKFILL = 500


class Feed:
    """Owns the Redis read loop, the per-line state and the subscribers; start once, stop once."""

    def __init__(
        self,
        streams: Streams,
        settings: UiSettings,
        metrics: UiMetrics,
        jobs: JobBoard,
        on_models_hint: Callable[[], None] = lambda: None,
    ) -> None:
        self._streams = streams
        self._metrics = metrics
        self._jobs = jobs
        self._on_models_hint = on_models_hint
        self._book = LineBook(streams, settings)
        self._lock = threading.Lock()
        self._subscribers: dict[str, set[Mailbox]] = {}
        self._stats_pushed: dict[str, float] = {}
        self._events_pos: str | None = None
        self._status = StatusOut(redis="up", message="")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ui-feed", daemon=True)

    # --- lifecycle -----------------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    # --- what handlers read --------------------------------------------------------------------------
    def status(self) -> StatusOut:
        return self._status

    def lines(self) -> list[str]:
        return self._book.lines()

    def lines_out(self) -> LinesOut:
        return self._book.lines_out()

    def allowed(self, line: str) -> bool:
        return self._book.allowed(line)

    def stats(self, line: str) -> StatsOut:
        return self._book.stats(line)

    def defects(self, line: str) -> list[ResultOut]:
        return self._book.defects(line)

    def latest(self, line: str) -> ResultOut | None:
        return self._book.latest(line)

    # --- subscribers ---------------------------------------------------------------------------------
    def subscribe(self, mailbox: Mailbox) -> None:
        with self._lock:
            self._subscribers.setdefault(mailbox.line, set()).add(mailbox)
        self._book.request(mailbox.line)
        self._metrics.sse_clients.inc()

    def unsubscribe(self, mailbox: Mailbox) -> None:
        with self._lock:
            group = self._subscribers.get(mailbox.line, set())
            group.discard(mailbox)
            if not group:
                self._subscribers.pop(mailbox.line, None)
                self._book.release(mailbox.line)
        self._metrics.sse_clients.dec()

    def broadcast(self, kind: str, payload: BaseModel, line: str | None = None) -> None:
        """Offer an event to the pages of ``line`` (every page when ``None``)."""
        with self._lock:
            targets = [m for key, group in self._subscribers.items() if line in (None, key) for m in group]
        for mailbox in targets:
            mailbox.offer(kind, payload)

    # --- the loop ------------------------------------------------------------------------------------
    def _run(self) -> None:
        backoff = Backoff(initial=0.2, maximum=3.0)
        next_discovery = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() >= next_discovery:
                    self._discover()
                    next_discovery = time.monotonic() + DISCOVER_EVERY_S
                self._read_once()
                self._set_status(up=True)
                backoff.reset()
            except redis.RedisError as exc:
                self._set_status(up=False, message=str(exc))
                next_discovery = 0.0
                self._stop.wait(backoff.next_delay())
            except Exception as exc:  # a bug must not kill the page's only feed: log, count, go on
                log.exception("feed_step_failed", error=str(exc))
                self._metrics.feed_errors.labels(kind="bug").inc()
                self._stop.wait(1.0)

    def _discover(self) -> None:
        added = self._book.discover()
        if added:
            self.broadcast("lines", self._book.lines_out())
        if self._events_pos is None:
            self._events_pos = self._backfill_events()

    def _backfill_events(self) -> str:
        stream = names.events_stream()
        entries = self._streams.latest(stream, EVENTS_BACKFILL)
        for entry in reversed(entries):
            self._on_event(entry)
        return entries[0].id if entries else "0-0"

    def _read_once(self) -> None:
        positions = self._book.positions()
        if self._events_pos is not None:
            positions[names.events_stream()] = self._events_pos
        if not positions:
            self._stop.wait(READ_BLOCK_MS / 1000)
            return
        entries = self._streams.read(positions, count=READ_COUNT, block_ms=READ_BLOCK_MS)
        for entry in entries:
            if entry.stream == names.events_stream():
                self._events_pos = entry.id
                self._on_event(entry)
            else:
                self._on_result(entry)
        self._push_stats()

    def _on_result(self, entry: Entry) -> None:
        line = self._book.line_of(entry.stream)
        if line is None:
            return
        try:
            result = entry.parse(Result)
        except MessageError as exc:
            self._book.advance(line, entry.id)
            log.warning("result_malformed", line=line, entry_id=entry.id, error=str(exc))
            self._metrics.feed_errors.labels(kind="malformed").inc()
            return
        out = result_out(line, entry.id, result)
        self._book.record(line, entry.id, result, out)
        self._metrics.results.labels(verdict=result.verdict).inc()
        if result.verdict == "defect":
            self.broadcast("defect", out, line)
        self.broadcast("result", out, line)

    def _on_event(self, entry: Entry) -> None:
        try:
            event = entry.parse(Event)
        except MessageError as exc:
            log.warning("event_malformed", entry_id=entry.id, error=str(exc))
            return
        if self._jobs.update(event):
            self._on_models_hint()

    def _push_stats(self) -> None:
        now = time.monotonic()
        with self._lock:
            lines = list(self._subscribers)
        for line in lines:
            if now - self._stats_pushed.get(line, 0.0) >= STATS_EVERY_S:
                self._stats_pushed[line] = now
                self.broadcast("stats", self._book.stats(line), line)

    def _set_status(self, *, up: bool, message: str = "") -> None:
        if (self._status.redis == "up") == up:
            return
        if up:
            log.info("redis_reconnected")
            self._status = StatusOut(redis="up", message="")
        else:
            log.warning("redis_unreachable", error=message)
            self._status = StatusOut(redis="down", message="Redis is unreachable: reconnecting")
            self._metrics.feed_errors.labels(kind="redis").inc()
        self._metrics.redis_up.set(1 if up else 0)
        self.broadcast("status", self._status)
