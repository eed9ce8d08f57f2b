"""The local spool: captures wait here, durably, until the store has confirmed every byte of them.

Layout under ``EI_SPOOL_DIR``::

    ready/{line}+{frame_id}/   a complete capture: image.<ext>, mask.png (optional), result.json
    incoming/                  temp folders being written; anything here after a crash is removed
    uploaded/{line}+{frame_id} empty markers of recently uploaded captures (dedup of re-deliveries)
    rejected/                  malformed stream entries and corrupt spool folders, kept for a human
    state/                     uploader id, batch counter and open batch journals (see journal.py)

The spool holds at most ``quota_bytes`` of capture files. When a new capture does not fit, the spool
evicts by :class:`~edgeinspect_uploader.layout.Keep` class (good parts, then uncertain ones, then
defects and errors), oldest first within a class; if the newcomer is itself the least worth keeping,
it is the one dropped. Captures claimed by an upload batch are never evicted.
"""

from __future__ import annotations

import errno
import heapq
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from edgeinspect.core.observability import get_logger

from edgeinspect_uploader.layout import Keep
from edgeinspect_uploader.record import RESULT_FILE, CaptureFiles, read_summary
from edgeinspect_uploader.rejects import RejectBin
from edgeinspect_uploader.spoolfs import clear_temp, publish_dir, remove_dir, touch_durably

log = get_logger(__name__)
Rank = tuple[int, int, str]


@dataclass(frozen=True, slots=True)
class SpoolEntry:
    """One complete capture in ``ready/``."""

    name: str
    line: str
    frame_id: str
    ts_ns: int
    keep: Keep
    size: int

    @property
    def rank(self) -> Rank:
        """Eviction order: lowest class first, then oldest, then name (a total, stable order)."""
        return (int(self.keep), self.ts_ns, self.name)


class PutStatus(Enum):
    SPOOLED = "spooled"
    DUPLICATE = "duplicate"
    DROPPED = "dropped"
    """Over quota and worth less than everything else in the spool: evicted on arrival."""


@dataclass(frozen=True, slots=True)
class PutOutcome:
    status: PutStatus
    entry: SpoolEntry
    evicted: list[SpoolEntry] = field(default_factory=list)


class SpoolWriteError(OSError):
    """Writing a capture failed (disk full, I/O error) after ``evicted`` were already removed for it."""

    def __init__(self, cause: OSError, evicted: list[SpoolEntry]) -> None:
        super().__init__(cause.errno, f"cannot spool a capture: {cause}")
        self.evicted = evicted


@dataclass(frozen=True, slots=True)
class SpoolStats:
    """The backlog as ``/status`` and the gauges show it."""

    captures: int
    bytes: int
    quota_bytes: int
    by_class: dict[str, int]
    oldest_ts_ns: int | None
    claimed: int


class Spool:
    """The spool folder and its in-memory index; thread-safe (one writer, one uploader)."""

    def __init__(
        self,
        root: Path,
        quota_bytes: int,
        *,
        tombstone_ttl_s: float = 86_400,
        rejected_keep: int = 1000,
        reserve_bytes: int = 0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.root = root
        self.quota_bytes = quota_bytes
        self.reserve_bytes = reserve_bytes
        self.ready = root / "ready"
        self.incoming = root / "incoming"
        self.uploaded = root / "uploaded"
        self.state = root / "state"
        self.rejects = RejectBin(root / "rejected", rejected_keep)
        self._ttl = tombstone_ttl_s
        self._wall = wall
        self._lock = threading.RLock()
        self._live: dict[str, SpoolEntry] = {}
        self._claimed: set[str] = set()
        self._heap: list[Rank] = []
        self._used = 0

    def open(self) -> int:
        """Create the folders, drop crash leftovers, rebuild the index; returns the captures found."""
        for folder in (self.ready, self.incoming, self.uploaded, self.state, self.rejects.folder):
            folder.mkdir(parents=True, exist_ok=True)
        leftovers = clear_temp(self.incoming) + clear_temp(self.ready)
        if leftovers:
            log.info("spool_partial_writes_removed", count=leftovers)
        with self._lock:
            self._live.clear()
            self._used = 0
            for folder in sorted(self.ready.iterdir()):
                self._load(folder)
            self._rebuild_heap()
        self.prune_tombstones()
        return len(self._live)

    def _check_reserve(self, size: int) -> None:
        """ENOSPC unless ``size`` bytes leave ``reserve_bytes`` free on the spool's disk.

        Why: the uploader must write its batch journal before it may upload (and so free) anything. If
        new captures took every byte that finished uploads freed, a full disk would never drain; so
        captures stop short of the last ``reserve_bytes`` and wait in Redis instead.
        """
        if self.reserve_bytes <= 0:
            return
        free = shutil.disk_usage(self.root).free
        if free < size + self.reserve_bytes:
            raise OSError(
                errno.ENOSPC,
                f"No space left on device for a {size}-byte capture: {free} bytes free, "
                f"{self.reserve_bytes} kept for the upload journal (EI_SPOOL_RESERVE_BYTES)",
            )

    def _load(self, folder: Path) -> None:
        if (self.uploaded / folder.name).exists():
            remove_dir(folder)  # uploaded and confirmed; only the deletion was lost in a crash
            return
        try:
            summary = read_summary((folder / RESULT_FILE).read_bytes())
            size = sum(p.stat().st_size for p in folder.iterdir())
        except (OSError, ValueError, KeyError, TypeError) as exc:
            kept = self.rejects.keep_folder(folder, f"unreadable spooled capture: {exc}")
            log.error("spool_capture_corrupt", folder=str(folder), kept_as=str(kept), error=str(exc))
            return
        self._add(SpoolEntry(folder.name, summary.line, summary.frame_id, summary.ts_ns, summary.keep, size))

    def put(self, capture: CaptureFiles) -> PutOutcome:
        """Spool ``capture`` durably (evicting if needed); idempotent by line and frame id."""
        name = capture.name
        entry = SpoolEntry(name, capture.line, capture.frame_id, capture.ts_ns, capture.keep, capture.size)
        with self._lock:
            if name in self._live or (self.uploaded / name).exists():
                return PutOutcome(PutStatus.DUPLICATE, entry)
            victims = self._plan_room(entry)
            if victims is None:
                return PutOutcome(PutStatus.DROPPED, entry)
            for victim in victims:
                self._drop(victim.name)
                remove_dir(self.ready / victim.name)
            try:
                self._check_reserve(entry.size)
                published = publish_dir(self.incoming, self.ready / name, capture.files)
            except OSError as exc:
                raise SpoolWriteError(exc, victims) from exc
            if not published:
                return PutOutcome(PutStatus.DUPLICATE, entry, victims)
            self._add(entry)
            return PutOutcome(PutStatus.SPOOLED, entry, victims)

    def _plan_room(self, new: SpoolEntry) -> list[SpoolEntry] | None:
        """The captures to evict so ``new`` fits, or None when ``new`` itself should be dropped."""
        free = self.quota_bytes - self._used
        if new.size <= free:
            return []
        if new.size > self.quota_bytes:
            return None
        popped: list[Rank] = []
        victims: list[SpoolEntry] = []
        while free < new.size and self._heap:
            rank = heapq.heappop(self._heap)
            current = self._live.get(rank[2])
            if current is None or current.rank != rank:
                continue  # stale heap item of an uploaded or evicted capture
            popped.append(rank)
            if rank[2] in self._claimed:
                continue
            if rank >= new.rank:
                break  # everything left is worth more than the newcomer
            victims.append(current)
            free += current.size
        for rank in popped:
            heapq.heappush(self._heap, rank)
        return victims if free >= new.size else None

    def _add(self, entry: SpoolEntry) -> None:
        self._live[entry.name] = entry
        self._used += entry.size
        heapq.heappush(self._heap, entry.rank)

    def _drop(self, name: str) -> None:
        entry = self._live.pop(name, None)
        if entry is not None:
            self._used -= entry.size
        self._claimed.discard(name)
        if len(self._heap) > 2 * len(self._live) + 1024:
            self._rebuild_heap()

    def _rebuild_heap(self) -> None:
        self._heap = [entry.rank for entry in self._live.values()]
        heapq.heapify(self._heap)

    def reject(self, entry_id: str, fields: Mapping[bytes, bytes], reason: str) -> Path:
        """Keep a malformed stream entry in ``rejected/`` for a human; returns its file."""
        return self.rejects.keep_entry(entry_id, fields, reason)

    def claim_batch(self, max_items: int, max_bytes: int) -> list[SpoolEntry]:
        """The next captures to upload (defects first, oldest first), claimed so nothing evicts them."""
        with self._lock:
            free = [e for e in self._live.values() if e.name not in self._claimed]
            ordered = heapq.nsmallest(max_items, free, key=lambda e: (-int(e.keep), e.ts_ns, e.name))
            batch: list[SpoolEntry] = []
            total = 0
            for entry in ordered:
                if batch and total + entry.size > max_bytes:
                    break
                batch.append(entry)
                total += entry.size
            self._claimed.update(e.name for e in batch)
            return batch

    def claim(self, names: list[str]) -> list[SpoolEntry]:
        """Claim named captures (an open batch being resumed); returns those still spooled."""
        with self._lock:
            found = [self._live[n] for n in names if n in self._live]
            self._claimed.update(e.name for e in found)
            return found

    def release(self, names: list[str]) -> None:
        with self._lock:
            self._claimed.difference_update(names)

    def path(self, name: str) -> Path:
        return self.ready / name

    def is_uploaded(self, name: str) -> bool:
        """True once ``finish`` recorded the capture as confirmed by the store."""
        return (self.uploaded / name).exists()

    def finish(self, names: list[str]) -> None:
        """The store confirmed these captures: mark them uploaded (durably), then delete their files."""
        touch_durably(self.uploaded, names)
        with self._lock:
            for name in names:
                self._drop(name)
                remove_dir(self.ready / name)

    def prune_tombstones(self) -> int:
        """Forget uploaded captures older than the TTL (a re-delivery after that is re-uploaded)."""
        cutoff = self._wall() - self._ttl
        removed = 0
        for marker in self.uploaded.iterdir():
            try:
                if marker.stat().st_mtime < cutoff:
                    marker.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    def stats(self) -> SpoolStats:
        with self._lock:
            by_class = {k.name.lower(): 0 for k in Keep}
            oldest: int | None = None
            for entry in self._live.values():
                by_class[entry.keep.name.lower()] += 1
                oldest = entry.ts_ns if oldest is None else min(oldest, entry.ts_ns)
            return SpoolStats(
                len(self._live), self._used, self.quota_bytes, by_class, oldest, len(self._claimed)
            )

    def names(self) -> list[str]:
        """Every spooled capture (for tests and the status page)."""
        with self._lock:
            return sorted(self._live)


def describe(entry: SpoolEntry) -> dict[str, object]:
    """An entry as event/log detail (the line travels separately, as the event's own field)."""
    return {"frame_id": entry.frame_id, "ts_ns": entry.ts_ns, "keep": entry.keep.name.lower(),
            "bytes": entry.size}  # fmt: skip
