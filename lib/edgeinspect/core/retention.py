"""Streams bounded by bytes and age, never by silently dropping what a consumer has not processed.

Every producer of a stream (camera: frames; worker: results and captures; every service: events)
owns a :class:`StreamRetention` and calls :meth:`StreamRetention.added` after each XADD. At most
once per ``every_s`` it runs one Lua script that trims the stream to its :class:`Budget`:

* **age**: entries older than ``max_age_s`` (by their id, which is Redis's clock) go
  (``XTRIM MINID``);
* **bytes**: the producer keeps a running mean of its entries' sizes, so the budget becomes a count
  (``max_bytes / mean``), and the oldest entries beyond it go.

An entry the stream's consumer group has not processed yet is protected:

* delivered but not acknowledged (a consumer is working on it, or died holding it): never trimmed;
  the cut stops before it, so the stream may briefly exceed its budget (by at most what the
  consumers hold);
* not yet delivered: trimmed only on purpose: the group's last-delivered id moves past it first
  (``XGROUP SETID``, keeping ``lag`` exact) and it is returned, counted in
  ``ei_stream_trimmed_unconsumed_total{stream}`` and logged with its ids;
* when the group does not exist yet (no consumer ever started), every trimmed entry counts as
  unconsumed.

For the frames stream, the camera's backpressure (``EI_MAX_BACKLOG``) already keeps the undelivered
part small, so in practice only the age bound (a worker down for longer than ``max_age_s``) drops
undelivered frames, and it says so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis
from prometheus_client import CollectorRegistry, Counter

from edgeinspect.core.budget import Budget
from edgeinspect.core.observability import get_logger

log = get_logger(__name__)

SCAN_LIMIT = 64
"""Most entries one trim may inspect or drop (each is copied into the script): a large backlog is
trimmed over a few calls instead of one long-blocking script."""

TRIM_LUA = """
local stream = KEYS[1]
local group, keep, max_age_ms, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])

local function parts(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local function lt(a, b)
  local am, as = parts(a)
  local bm, bs = parts(b)
  return am < bm or (am == bm and as < bs)
end
local function after(id)
  local ms, seq = parts(id)
  return string.format('%d-%d', ms, seq + 1)
end
local function as_map(flat)
  local map = {}
  for i = 1, #flat, 2 do map[flat[i]] = flat[i + 1] end
  return map
end
local function find_group()
  for _, raw in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local info = as_map(raw)
    if info['name'] == group then return info end
  end
  return nil
end
local function frame_ids(entries, out)
  for _, entry in ipairs(entries) do
    local fields = entry[2]
    local found = entry[1]
    for i = 1, #fields, 2 do
      if fields[i] == 'frame_id' then found = fields[i + 1] end
    end
    table.insert(out, found)
  end
end

local length = redis.call('XLEN', stream)
if length == 0 then return {0, 0} end
local cut = nil
if max_age_ms > 0 then
  local t = redis.call('TIME')
  local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  cut = string.format('%d-0', math.max(0, now_ms - max_age_ms))
end
if keep > 0 and length > keep then
  local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', math.min(length - keep, limit))
  local bytes_cut = after(oldest[#oldest][1])
  if cut == nil or lt(cut, bytes_cut) then cut = bytes_cut end
end
if cut == nil then return {0, 0} end

local reply = {0, 0}
if group ~= '' then
  local info = find_group()
  if info == nil then
    local victims = redis.call('XRANGE', stream, '-', '(' .. cut, 'COUNT', limit)
    if #victims == limit then cut = after(victims[#victims][1]) end
    reply[1] = #victims
    frame_ids(victims, reply)
  else
    local pending = redis.call('XPENDING', stream, group)
    if tonumber(pending[1]) > 0 and lt(pending[2], cut) then
      cut = pending[2]
      reply[2] = 1
    end
    local last = info['last-delivered-id']
    if lt(last, cut) then
      local victims = redis.call('XRANGE', stream, '(' .. last, '(' .. cut, 'COUNT', limit)
      if #victims > 0 then
        local skip_to = victims[#victims][1]
        if #victims == limit then cut = after(skip_to) end
        local read = info['entries-read']
        if info['lag'] and read then
          redis.call('XGROUP', 'SETID', stream, group, skip_to, 'ENTRIESREAD', read + #victims)
        else
          redis.call('XGROUP', 'SETID', stream, group, skip_to)
        end
        reply[1] = #victims
        frame_ids(victims, reply)
      end
    end
  end
end
redis.call('XTRIM', stream, 'MINID', cut)
return reply
"""


@dataclass(frozen=True, slots=True)
class Trimmed:
    """What one trim did: undelivered entries dropped (their frame ids, else entry ids), and whether
    the cut was held back by an entry a consumer is still working on."""

    dropped: tuple[str, ...] = ()
    held_back: bool = False


def trimmed_counter(registry: CollectorRegistry) -> Counter:
    """``ei_stream_trimmed_unconsumed_total{stream}``, on a service's own registry."""
    return Counter(
        "ei_stream_trimmed_unconsumed_total",
        "entries trimmed (bytes or age budget) before their consumer group had read them",
        ["stream"],
        registry=registry,
    )


def entry_size(fields: Iterable[Any]) -> int:
    """Approximate bytes of one entry from its field names and values (what Redis stores)."""
    total = 0
    for item in fields:
        total += len(item) if isinstance(item, (bytes, str)) else len(str(item))
    return total


class StreamRetention:
    """Keeps one stream within its budget, from the producer's side; thread-safe."""

    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        budget: Budget,
        *,
        group: str = "",
        counter: Counter | None = None,
        every_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.budget = budget
        self.group = group
        self._counter = counter
        self._every_s = every_s
        self._clock = clock
        self._script: Any = client.register_script(TRIM_LUA)
        self._lock = threading.Lock()
        self._mean = 0.0
        self._seen = 0
        self._last = float("-inf")

    def keep_entries(self) -> int:
        """The bytes budget as an entry count at the running mean size (0 before any entry)."""
        if self._seen == 0 or self.budget.max_bytes <= 0:
            return 0
        return max(1, int(self.budget.max_bytes // max(1.0, self._mean)))

    def added(self, size: int) -> Trimmed | None:
        """Record one XADD of ``size`` bytes; trims when ``every_s`` has passed since the last trim."""
        with self._lock:
            self._seen += 1
            weight = 1.0 / min(self._seen, 100)  # the plain mean first, then an exponential one
            self._mean += (size - self._mean) * weight
            now = self._clock()
            if now - self._last < self._every_s:
                return None
            self._last = now
        return self.trim()

    def trim(self) -> Trimmed:
        """Trim now; raises ``redis.RedisError`` when Redis cannot be reached."""
        age_ms = int(self.budget.max_age_s * 1000)
        reply = self._script(keys=[self.stream], args=[self.group, self.keep_entries(), age_ms, SCAN_LIMIT])
        dropped = tuple(v.decode() if isinstance(v, bytes) else str(v) for v in reply[2:])
        outcome = Trimmed(dropped, bool(int(reply[1])))
        if dropped:
            if self._counter is not None:
                self._counter.labels(self.stream).inc(len(dropped))
            log.warning(
                "stream_trimmed_unconsumed", stream=self.stream, group=self.group, count=len(dropped),
                ids=list(dropped[:20]), max_bytes=self.budget.max_bytes, max_age_s=self.budget.max_age_s,
            )  # fmt: skip
        return outcome
