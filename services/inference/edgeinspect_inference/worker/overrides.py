"""The line's threshold overrides as this worker applies them (see ``edgeinspect.core.thresholds``).

Two sources, layered: the worker's own ``EI_THRESHOLD_OVERRIDES`` setting, and the table the model
manager writes to Redis (``ei:thresholds``) from ``set_threshold`` jobs, which wins for the same key.
The Redis table is re-read every ``refresh_s`` by a thread of its own (never on the judging path),
so a job's change reaches the verdicts within seconds without a restart. A missing key keeps the
last table (a Redis that restarted empty gets it back from the model manager); an unreadable one
keeps it too and says so in the log, never failing a frame.

What the worker applies is written back per line (``ei:thresholds:{line}``) at every read, so
the UI shows the thresholds that really decide, including this worker's own setting.
"""

from __future__ import annotations

import json
import threading

import redis
from edgeinspect.core import names
from edgeinspect.core.errors import EdgeInspectError
from edgeinspect.core.messages import Event, now_ns
from edgeinspect.core.observability import get_logger
from edgeinspect.core.package import Manifest, Thresholds
from edgeinspect.core.streams import Streams
from edgeinspect.core.thresholds import Effective, OverrideTable

log = get_logger(__name__)


class ThresholdOverrides:
    """Thread-safe; :meth:`thresholds` is called for every model answer and only reads memory."""

    def __init__(
        self,
        client: redis.Redis | None,
        line: str,
        setting: OverrideTable | None = None,
        *,
        refresh_s: float = 5.0,
    ) -> None:
        self._client = client
        self._line = line
        self._setting = setting or OverrideTable()
        self._refresh_s = refresh_s
        self._lock = threading.Lock()
        self._jobs = OverrideTable()
        self._table = self._setting
        self._cache: dict[tuple[str, str, float, float | None], tuple[Thresholds, Effective]] = {}
        """(name, version, manifest image, manifest pixel) -> what :meth:`thresholds` answers."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Read now (the first frame already sees the overrides), then every ``refresh_s``."""
        self.refresh()
        self._thread = threading.Thread(target=self._run, name="threshold-overrides", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self._refresh_s):
            try:
                self.refresh()
            except Exception as exc:  # a bug here must not stop later reads; verdicts keep the last table
                log.exception("threshold_overrides_refresh_failed", error=str(exc))

    def table(self) -> OverrideTable:
        """The layered table as last read."""
        return self._table

    def thresholds(self, manifest: Manifest) -> tuple[Thresholds, Effective]:
        """The thresholds that judge ``manifest``'s outputs, and where each came from."""
        key = (manifest.name, manifest.version, float(manifest.thresholds.image), manifest.thresholds.pixel)
        cache = self._cache  # replaced (never mutated by others) whenever the table changes
        found = cache.get(key)
        if found is None:
            effective = self._table.effective(*key)
            chosen = (
                Thresholds(image=effective.image, pixel=effective.pixel)
                if effective.overridden
                else manifest.thresholds
            )
            found = cache[key] = (chosen, effective)
        return found

    def refresh(self) -> None:
        """Read the jobs' table from Redis now; keeps the last one when Redis cannot give a new one."""
        with self._lock:
            jobs = self._read_jobs()
            if jobs is not None:
                self._jobs = jobs
            table = self._setting.layered(self._jobs)
            if table != self._table:
                log.info("threshold_overrides_changed", line=self._line, overrides=table.to_json())
                self._table = table
                self._cache = {}
            self._publish(table)  # every time: a Redis that restarted empty has it back for the UI

    def _read_jobs(self) -> OverrideTable | None:
        if self._client is None:
            return OverrideTable()
        try:
            raw = self._client.get(names.threshold_overrides_key())
        except (redis.RedisError, OSError) as exc:
            log.warning("threshold_overrides_unread", error=str(exc))
            return None
        if raw is None:
            return None
        try:
            return OverrideTable.from_json(raw, source="job", what=names.threshold_overrides_key())
        except EdgeInspectError as exc:
            log.error("threshold_overrides_unreadable", error=str(exc)[:500])
            return None

    def _publish(self, table: OverrideTable) -> None:
        """What this line applies, for the UI (``ei:thresholds:{line}``)."""
        if self._client is None:
            return
        body = {"line": self._line, "overrides": table.to_json(), "updated_ns": now_ns()}
        try:
            self._client.set(names.line_thresholds_key(self._line), json.dumps(body, sort_keys=True))
        except (redis.RedisError, OSError) as exc:
            log.warning("line_thresholds_not_published", line=self._line, error=str(exc))


def announce_setting(streams: Streams, line: str, setting: OverrideTable) -> None:
    """An ``ei:events`` entry when the worker starts with ``EI_THRESHOLD_OVERRIDES`` (the audit of a
    setting: it changes only with a restart, and says so once)."""
    if not setting:
        return
    event = Event.new("threshold_setting", "inference", line=line, overrides=setting.to_json())
    try:
        streams.add(names.events_stream(), event)
    except (redis.RedisError, OSError) as exc:
        log.warning("event_not_published", type="threshold_setting", error=str(exc))
