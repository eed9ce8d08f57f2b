"""Commit one judged frame atomically: result (+ capture) XADD, "done" mark and XACK in one Lua script.

Why a script and not a MULTI: the write must be *conditional*. Each frame id gets a short-lived
``ei:done:{line}:{frame_id}`` key set with ``NX``; only the first commit of a frame adds a result, any
later one (a peer that took the entry over with XAUTOCLAIM while the first worker was merely slow, or a
frame the camera sent twice) only acknowledges it. Because the XACK runs in the same script, there is
no window in which a result exists but its frame is still pending: a worker killed at any instant
leaves either nothing (the successor redoes the frame) or everything (the successor never sees it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import redis
from edgeinspect.core import names
from edgeinspect.core.messages import Capture, FieldValue, Result
from edgeinspect.core.observability import get_logger
from edgeinspect.core.retention import StreamRetention, entry_size

log = get_logger(__name__)

# KEYS: done, results, frames, capture
# ARGV: entry_id, group, ttl_s, results_maxlen, n_result, capture_maxlen, n_capture, fields...
_COMMIT = """
local fresh = redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[3])
if fresh then
  local n = tonumber(ARGV[5])
  local m = tonumber(ARGV[7])
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[4], '*', unpack(ARGV, 8, 7 + n))
  if m > 0 then
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[6], '*', unpack(ARGV, 8 + n, 7 + n + m))
  end
end
redis.call('XACK', KEYS[3], ARGV[2], ARGV[1])
if fresh then return 1 end
return 0
"""


@dataclass(frozen=True, slots=True)
class Commit:
    """What to write for one stream entry: its result, and its capture when the policy chose it."""

    entry_id: str
    result: Result
    capture: Capture | None = None


class Committer:
    """Writes commits for one line and consumer group; see the module docstring for the guarantees."""

    def __init__(
        self,
        client: redis.Redis,
        line: str,
        group: str,
        *,
        results_maxlen: int = 10_000,
        capture_maxlen: int = 1_000,
        done_ttl_s: int = 600,
        results_retention: StreamRetention | None = None,
        capture_retention: StreamRetention | None = None,
    ) -> None:
        self._client = client
        self._line = line
        self._group = group
        self._results_maxlen = results_maxlen
        self._capture_maxlen = capture_maxlen
        self._done_ttl_s = done_ttl_s
        self._results_retention = results_retention
        self._capture_retention = capture_retention
        self._script: Any = client.register_script(_COMMIT)
        self._frames = names.frames_stream(line)
        self._results = names.results_stream(line)
        self._capture = names.capture_stream()

    def commit(self, item: Commit) -> bool:
        """Add the result (and capture) unless the frame already has one, then XACK; True if added."""
        result_args = _flatten(item.result.to_fields())
        capture_args = _flatten(item.capture.to_fields()) if item.capture is not None else []
        keys = [names.done_key(self._line, item.result.frame_id), self._results, self._frames, self._capture]
        args: list[FieldValue] = [
            item.entry_id,
            self._group,
            self._done_ttl_s,
            self._results_maxlen,
            len(result_args),
            self._capture_maxlen,
            len(capture_args),
            *result_args,
            *capture_args,
        ]
        added = int(self._script(keys=keys, args=args)) == 1
        if added:
            self._retain(self._results_retention, result_args)
            if capture_args:
                self._retain(self._capture_retention, capture_args)
        return added

    def _retain(self, retention: StreamRetention | None, fields: list[FieldValue]) -> None:
        """Bound the stream just written (bytes and age); a failed trim is retried on a later commit."""
        if retention is None:
            return
        try:
            retention.added(entry_size(fields))
        except redis.RedisError as exc:
            log.warning("retention_failed", stream=retention.stream, error=str(exc))


def _flatten(fields: Mapping[str, FieldValue]) -> list[FieldValue]:
    flat: list[FieldValue] = []
    for key, value in fields.items():
        flat.extend((key, value))
    return flat
