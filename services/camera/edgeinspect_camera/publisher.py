"""Publishing frames under backpressure: at most ``max_backlog`` unconsumed frames in the stream.

"Unconsumed" means not yet handed to the inference group: the group's ``lag`` (Redis 7 keeps it
exact while nobody XDELs), counted from its ``last-delivered-id`` when Redis cannot say, and every
entry (``XLEN``) before any worker has created the group. Delivered-but-unacked entries are being
worked on and never count, so a slow model does not make the camera drop frames it already handed
over.

When the backlog is full:

* ``drop_newest`` does not add the new frame;
* ``drop_oldest`` makes room by removing the oldest unconsumed frames from the group's view: with a
  group, ``XGROUP SETID`` moves its last-delivered id past them (with ``ENTRIESREAD``, so ``lag``
  stays exact; ``XDEL`` would leave tombstones that make Redis stop reporting lag); before any group,
  the oldest entries are trimmed exactly.

Check and action run in one Lua script, so a worker's ``XREADGROUP`` can never interleave between
them: a frame is either delivered or dropped, never both, and every drop is counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from edgeinspect.core.messages import Frame

from edgeinspect_camera.settings import DropPolicy

BACKPRESSURE_LUA = """
local stream = KEYS[1]
local op, group, limit, policy, maxlen = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5]

local function as_map(flat)
  local map = {}
  for i = 1, #flat, 2 do map[flat[i]] = flat[i + 1] end
  return map
end

local function find_group()
  if redis.call('EXISTS', stream) == 0 then return nil end
  for _, raw in ipairs(redis.call('XINFO', 'GROUPS', stream)) do
    local info = as_map(raw)
    if info['name'] == group then return info end
  end
  return nil
end

local function undelivered(info, count)
  return redis.call('XRANGE', stream, '(' .. info['last-delivered-id'], '+', 'COUNT', count)
end

local function backlog_of(info)
  if info == nil then return redis.call('XLEN', stream) end
  if info['lag'] then return info['lag'] end
  return #undelivered(info, limit + 1)
end

local function skip_oldest(info, count)
  local skipped = undelivered(info, count)
  if #skipped == 0 then return skipped end
  local last = skipped[#skipped][1]
  local read = info['entries-read']
  if info['lag'] and not read then
    local added = as_map(redis.call('XINFO', 'STREAM', stream))['entries-added']
    if added then read = added - info['lag'] end
  end
  if info['lag'] and read then
    redis.call('XGROUP', 'SETID', stream, group, last, 'ENTRIESREAD', read + #skipped)
  else
    redis.call('XGROUP', 'SETID', stream, group, last)
  end
  return skipped
end

local function trim_oldest(count, length)
  local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', count)
  redis.call('XTRIM', stream, 'MAXLEN', length - #oldest)
  return oldest
end

local info = find_group()
local backlog = backlog_of(info)
if op == 'peek' then return {false, backlog, 0} end
local dropped = {}
if backlog >= limit then
  if policy == 'drop_newest' then return {false, backlog, 1} end
  if info == nil then
    dropped = trim_oldest(backlog - limit + 1, backlog)
  else
    dropped = skip_oldest(info, backlog - limit + 1)
  end
end
local id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', unpack(ARGV, 6))
local reply = {id, backlog, #dropped}
for _, entry in ipairs(dropped) do
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'frame_id' then table.insert(reply, fields[i + 1]) end
  end
end
return reply
"""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What publishing one frame did: its entry id (``None`` if it was the one dropped), the backlog
    it found, and how many frames were dropped (with their ids when they were older ones)."""

    entry_id: str | None
    backlog: int
    dropped: int
    dropped_frame_ids: tuple[str, ...] = ()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class BackpressurePublisher:
    """XADD to one frames stream, keeping at most ``max_backlog`` frames unconsumed."""

    def __init__(
        self,
        client: redis.Redis,
        stream: str,
        *,
        group: str,
        max_backlog: int,
        policy: DropPolicy,
        maxlen: int,
    ) -> None:
        self.stream = stream
        self.group = group
        self.max_backlog = max_backlog
        self.policy = policy
        self.maxlen = maxlen
        self._script = client.register_script(BACKPRESSURE_LUA)

    def publish(self, frame: Frame) -> Outcome:
        """Add ``frame`` unless the policy drops it; raises ``redis.RedisError`` if Redis is down."""
        fields: list[Any] = []
        for key, value in frame.to_fields().items():
            fields.extend((key, value))
        reply = self._run("add", fields)
        entry = reply[0]
        return Outcome(
            entry_id=_text(entry) if entry is not None else None,
            backlog=int(reply[1]),
            dropped=int(reply[2]),
            dropped_frame_ids=tuple(_text(v) for v in reply[3:]),
        )

    def backlog(self) -> int:
        """Frames the line has not taken yet (what ``fps=0`` waits on)."""
        return int(self._run("peek", [])[1])

    def _run(self, op: str, fields: Sequence[Any]) -> list[Any]:
        args = [op, self.group, self.max_backlog, self.policy, self.maxlen, *fields]
        return list(self._script(keys=[self.stream], args=args))
