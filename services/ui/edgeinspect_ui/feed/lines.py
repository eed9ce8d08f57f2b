"""Per-line state the UI keeps: which lines exist, where each read stopped, counters, recent defects.

Lines come from ``EI_UI_LINES`` when set; otherwise from the Redis set of lines plus any
``ei:results:*`` stream, plus the lines pages ask for. A line first seen is replayed from the start
of the current shift, so a restarted UI shows the shift's counters and defects again.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from edgeinspect.core import names
from edgeinspect.core.errors import MessageError
from edgeinspect.core.messages import Result
from edgeinspect.core.streams import Streams

from edgeinspect_ui.api.schemas import LinesOut, ResultOut, StatsOut
from edgeinspect_ui.feed.shift import ShiftCounter
from edgeinspect_ui.feed.views import result_out
from edgeinspect_ui.settings import UiSettings

BACKFILL_BATCH = 500
RESULTS_PREFIX = names.results_stream("")


@dataclass
class LineState:
    """What the UI knows about one line; ``position`` is the last results entry id read."""

    counter: ShiftCounter
    position: str
    defects: deque[ResultOut]
    latest: ResultOut | None = None
    requested: int = 0
    discovered: bool = False


class LineBook:
    """Thread-safe registry of ``LineState`` (the feed thread writes, handlers read snapshots)."""

    def __init__(self, streams: Streams, settings: UiSettings) -> None:
        self._streams = streams
        self._fixed = settings.fixed_lines()
        self._default = settings.line
        self._starts = settings.shift_starts()
        self._kept = settings.ui_defects_kept
        self._lock = threading.Lock()
        self._lines: dict[str, LineState] = {}
        self._pending: dict[str, int] = {}  # lines pages asked for, not yet watched: how many pages

    # --- which lines -----------------------------------------------------------------------------
    def allowed(self, line: str) -> bool:
        """Whether this UI shows ``line`` (with ``EI_UI_LINES`` set, only those lines)."""
        return not self._fixed or line in self._fixed

    def discover(self) -> list[str]:
        """Find new lines (Redis errors propagate); returns the ones added, already replayed."""
        found = set(self._fixed) if self._fixed else self._scan()
        with self._lock:
            wanted = (found | set(self._pending)) - set(self._lines)
            for line in set(self._lines) & found:
                self._lines[line].discovered = True
        added = []
        for line in sorted(wanted):
            state = self._backfill(line)
            state.discovered = line in found
            with self._lock:
                state.requested = self._pending.pop(line, 0)
                if line not in self._lines:
                    self._lines[line] = state
                    added.append(line)
        return added

    def _scan(self) -> set[str]:
        members = {
            m.decode() if isinstance(m, bytes) else str(m)
            for m in self._streams.client.smembers(names.lines_key())
        }
        for key in self._streams.client.scan_iter(match=f"{RESULTS_PREFIX}*", count=500):
            text = key.decode() if isinstance(key, bytes) else str(key)
            members.add(text[len(RESULTS_PREFIX) :])
        return {m for m in members if m}

    def request(self, line: str) -> None:
        """A page wants ``line``: watch it from the next discovery on, even before it has data."""
        with self._lock:
            state = self._lines.get(line)
            if state is None:
                self._pending[line] = self._pending.get(line, 0) + 1
            else:
                state.requested += 1

    def release(self, line: str) -> None:
        """No page shows ``line`` any more; forget it unless Redis knows it as a real line."""
        with self._lock:
            state = self._lines.get(line)
            if state is None:
                left = self._pending.pop(line, 0) - 1
                if left > 0:
                    self._pending[line] = left
                return
            state.requested = max(0, state.requested - 1)
            if not state.requested and not state.discovered:
                del self._lines[line]

    def lines(self) -> list[str]:
        with self._lock:
            known = [line for line, state in self._lines.items() if state.discovered]
        return sorted(known)

    def lines_out(self) -> LinesOut:
        lines = self.lines()
        if self._fixed:
            lines = sorted(set(lines) | set(self._fixed))
        default = self._default if self._default in lines or not lines else lines[0]
        return LinesOut(lines=lines, default=default)

    def line_of(self, stream: str) -> str | None:
        line = stream[len(RESULTS_PREFIX) :] if stream.startswith(RESULTS_PREFIX) else None
        with self._lock:
            return line if line in self._lines else None

    # --- reading ---------------------------------------------------------------------------------
    def positions(self) -> dict[str, str]:
        with self._lock:
            return {names.results_stream(line): state.position for line, state in self._lines.items()}

    def advance(self, line: str, entry_id: str) -> None:
        with self._lock:
            if line in self._lines:
                self._lines[line].position = entry_id

    def record(self, line: str, entry_id: str, result: Result, out: ResultOut) -> None:
        """Count a live result and remember it as the line's latest (and a defect, if it is one)."""
        with self._lock:
            state = self._lines.get(line)
            if state is None:
                return
            state.position = entry_id
            state.counter.roll()
            state.counter.add(result)
            state.latest = out
            if result.verdict == "defect":
                state.defects.appendleft(out)

    def _backfill(self, line: str) -> LineState:
        """Replay the shift so far from the stream (what its MAXLEN kept), newest defects first."""
        counter = ShiftCounter(line, self._starts)
        state = LineState(counter=counter, position="0-0", defects=deque(maxlen=self._kept))
        stream = names.results_stream(line)
        cursor = f"{counter.start_ns // 1_000_000}-0"
        while True:
            raw: Any = self._streams.client.xrange(stream, min=cursor, max="+", count=BACKFILL_BATCH)
            for eid, fields in raw or []:
                entry_id = eid.decode() if isinstance(eid, bytes) else str(eid)
                state.position = entry_id
                self._replay(line, entry_id, fields, state)
            if not raw or len(raw) < BACKFILL_BATCH:
                break
            cursor = f"({state.position}"
        if state.position == "0-0":
            newest = self._streams.latest(stream, 1)
            state.position = newest[0].id if newest else "0-0"
        return state

    def _replay(self, line: str, entry_id: str, fields: dict[bytes, bytes], state: LineState) -> None:
        try:
            result = Result.from_fields(fields)
        except MessageError:
            return
        state.counter.add(result, live=False)
        out = result_out(line, entry_id, result)
        state.latest = out
        if result.verdict == "defect":
            state.defects.appendleft(out)

    # --- snapshots for handlers --------------------------------------------------------------------
    def stats(self, line: str) -> StatsOut:
        with self._lock:
            state = self._lines.get(line)
            if state is not None:
                state.counter.roll()
                return state.counter.snapshot()
        return ShiftCounter(line, self._starts).snapshot()

    def defects(self, line: str) -> list[ResultOut]:
        with self._lock:
            state = self._lines.get(line)
            return list(state.defects) if state is not None else []

    def latest(self, line: str) -> ResultOut | None:
        with self._lock:
            state = self._lines.get(line)
            return state.latest if state is not None else None
