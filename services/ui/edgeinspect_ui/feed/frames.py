"""Find a frame's bytes in ``ei:frames:{line}`` by its frame id, reading as few entries as possible.

Frames are big, so the UI never reads the whole frames stream. A result names its frame's entry id
(``frame_entry``, stamped by the worker); for results without it, the UI remembers which entry id held
which frame id (ids only, a few bytes each) and otherwise scans the time window in which the frame
must have been stored (given by the result's link).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from edgeinspect.core import names
from edgeinspect.core.errors import MessageError
from edgeinspect.core.messages import Frame
from edgeinspect.core.observability import get_logger
from edgeinspect.core.streams import Entry, Streams

log = get_logger(__name__)

FIRST_BATCH = 4  # the frame is usually among the first few entries of its window
MAX_BATCH = 16  # entries per read at most: frames are big, a read holds them all in memory at once
MAX_SCAN = 64  # entries read newest-first when no window is known: a bare id says nothing of where
# With a window, the window bounds the read: a burst (many cameras on one line) can put hundreds of
# frames into it, and each is a frame the page links to. This cap only stops a pathological window.
MAX_WINDOW_SCAN = 4096


def _frame_id(entry: Entry) -> str:
    raw = entry.fields.get(b"frame_id", b"")
    return raw.decode("utf-8", "replace")


class FrameLocator:
    """frame id -> entry id memory (bounded LRU) plus a windowed scan for frames not seen yet."""

    def __init__(self, streams: Streams, capacity: int = 4096) -> None:
        self._streams = streams
        self._capacity = capacity
        self._ids: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._lock = threading.Lock()

    def find(
        self,
        line: str,
        frame_id: str,
        after_ms: int | None = None,
        before_ms: int | None = None,
        entry_id: str | None = None,
    ) -> Frame | None:
        """The frame, or ``None`` when it is not (or no longer) in the stream; Redis errors propagate.

        The result's ``frame_entry`` (``entry_id``) names the entry: one read. Results written
        without it (by an older worker) fall back to a remembered id, then to the window scan.
        """
        stream = names.frames_stream(line)
        for known in dict.fromkeys((entry_id, self._recall(line, frame_id))):
            if known is None:
                continue
            entries = self._streams.client.xrange(stream, min=known, max=known, count=1)
            entry = self._match(stream, line, frame_id, entries)
            if entry is not None:
                return self._parse(entry)
        entry = self._scan(stream, line, frame_id, after_ms, before_ms)
        return self._parse(entry) if entry is not None else None

    def _scan(
        self, stream: str, line: str, frame_id: str, after_ms: int | None, before_ms: int | None
    ) -> Entry | None:
        """Forward from ``after_ms`` when a window is known, else backward from the newest entry."""
        forward = after_ms is not None
        cursor = f"{after_ms}-0" if forward else "+"
        limit = f"{before_ms}-18446744073709551615" if before_ms is not None else "+"
        most = MAX_WINDOW_SCAN if forward else MAX_SCAN
        seen, batch = 0, FIRST_BATCH
        while seen < most:
            if forward:
                raw = self._streams.client.xrange(stream, min=cursor, max=limit, count=batch)
            else:
                raw = self._streams.client.xrevrange(stream, max=cursor, min="-", count=batch)
            if not raw:
                return None
            entry = self._match(stream, line, frame_id, raw)
            if entry is not None:
                return entry
            seen += len(raw)
            batch = min(batch * 2, MAX_BATCH)
            last = raw[-1][0].decode() if isinstance(raw[-1][0], bytes) else str(raw[-1][0])
            cursor = f"({last}"
        log.warning(
            "frame_scan_gave_up", stream=stream, frame_id=frame_id, entries_read=seen, windowed=forward
        )
        return None

    def _match(self, stream: str, line: str, frame_id: str, raw: object) -> Entry | None:
        found: Entry | None = None
        for eid, fields in raw or []:  # type: ignore[attr-defined]
            entry = Entry(stream, eid.decode() if isinstance(eid, bytes) else str(eid), fields)
            other = _frame_id(entry)
            self._remember(line, other, entry.id)
            if other == frame_id:
                found = entry
        return found

    def _parse(self, entry: Entry) -> Frame | None:
        try:
            return entry.parse(Frame)
        except MessageError as exc:
            log.warning("frame_malformed", stream=entry.stream, entry_id=entry.id, error=str(exc))
            return None

    def _recall(self, line: str, frame_id: str) -> str | None:
        with self._lock:
            entry_id = self._ids.get((line, frame_id))
            if entry_id is not None:
                self._ids.move_to_end((line, frame_id))
            return entry_id

    def _remember(self, line: str, frame_id: str, entry_id: str) -> None:
        with self._lock:
            self._ids[(line, frame_id)] = entry_id
            self._ids.move_to_end((line, frame_id))
            while len(self._ids) > self._capacity:
                self._ids.popitem(last=False)
