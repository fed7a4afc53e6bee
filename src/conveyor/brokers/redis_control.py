"""The Redis store's control keys: the command stream, the revocation set, and two queue
scripts of ``app.control`` (listing delayed messages, waking them early).

``{prefix}:control`` is a stream capped like the event stream (``XADD ... MAXLEN ~``, an exact
``XTRIM MINID`` for the age) and read with ``XREAD BLOCK``; ``{prefix}:revoked`` a sorted set of
task ids scored by when their revocation expires. Each stands alone in its hash slot; the queue
scripts touch only their queue's keys (see :mod:`conveyor.brokers.redis_scripts`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..events import Event, Retention
from .redis_scripts import _queue_script


def control_key(prefix: str) -> str:
    return f"{prefix}:control"


def revoked_key(prefix: str) -> str:
    return f"{prefix}:revoked"


def append_commands(prefix: str, entries: Sequence[Event], retention: Retention,
                    now: float) -> list[tuple[Any, ...]]:
    """One ``XADD`` per entry (their replies are the ids), then the trim by age."""
    stream = control_key(prefix)
    commands: list[tuple[Any, ...]] = [
        ("XADD", stream, "MAXLEN", "~", retention.count, "*", "e", e.encode()) for e in entries]
    commands.append(("XTRIM", stream, "MINID", max(0, int((now - retention.age) * 1000))))
    return commands


def revoke_commands(prefix: str, ids: Sequence[str], ttl: float,
                    now: float) -> list[tuple[Any, ...]]:
    key = revoked_key(prefix)
    scored = [v for task_id in ids for v in (repr(now + ttl), task_id)]
    return [("ZADD", key, *scored), ("ZREMRANGEBYSCORE", key, "-inf", repr(now))]


def revoked_command(prefix: str, now: float) -> tuple[Any, ...]:
    return ("ZRANGEBYSCORE", revoked_key(prefix), f"({now!r}", "+inf")


# ARGV: limit. Returns {id, eta, body, meta, ...}: delayed messages whose ETA is ahead, earliest
# first (the delayed set is scored by ETA).
SCHEDULED = _queue_script("scheduled", "delayed body meta", """
local t = now()
local found = redis.call('ZRANGEBYSCORE', delayed, '(' .. fmt_time(t), '+inf', 'WITHSCORES',
                         'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for i = 1, #found, 2 do
  local id = found[i]
  for _, v in ipairs({id, found[i + 1], redis.call('HGET', body, id),
                      redis.call('HGET', meta, id)}) do
    out[#out + 1] = v
  end
end
return out
""")

# ARGV: wake channel, then ids. Delayed ones move to ready at the place their retry gave them
# (their ready score), their ETA cleared. Returns how many moved.
WAKE = _queue_script("wake", "ready delayed meta", """
local moved = 0
for i = 2, #ARGV do
  local id = ARGV[i]
  if redis.call('ZREM', delayed, id) == 1 then
    local score, _, ctype = split_meta(redis.call('HGET', meta, id))
    redis.call('HSET', meta, id, score .. '||' .. ctype)
    redis.call('ZADD', ready, score, id)
    moved = moved + 1
  end
end
if moved > 0 then redis.call('PUBLISH', ARGV[1], '') end
return moved
""")
