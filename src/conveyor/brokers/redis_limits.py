"""The Redis store's rate windows and concurrency-key slots: the steps of the reference
algorithms in :mod:`conveyor.brokers.memory_control`, each operation one Lua script, judged by
the server's clock.

Rate windows: ``{P:rate}:s:<key>`` (a sorted set of starts, scored by time) and
``{P:rate}:t:<key>`` (members scored by their turn). Every window of an app shares the hash tag
``{P:rate}``, so a task's own window and its queue's are checked in one script.

Concurrency slots of key ``K`` share the tag ``{P:slot:K}``: ``h`` (holders scored by lease
expiry), ``w`` (the line, scored by arrival), ``u`` (waiters scored by when their place
expires), ``i`` (``waiter -> "patience|woken|queue"``) and ``n`` (the arrival counter). Every
key gets a TTL past its last live entry, so idle ones vanish.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .base import RateWindow
from .memory_control import EPSILON, LEAST_WAIT
from .redis_scripts import Script

_CLOCK = """
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
"""


def rate_keys(prefix: str, windows: Sequence[RateWindow]) -> list[str]:
    tag = f"{{{prefix}:rate}}"
    return [k for w in windows for k in (f"{tag}:s:{w.key}", f"{tag}:t:{w.key}")]


def rate_args(windows: Sequence[RateWindow], member: str) -> list[Any]:
    return [member, repr(EPSILON), repr(LEAST_WAIT),
            *(v for w in windows for v in (w.limit, repr(float(w.per))))]


# KEYS: starts, turns of each window. ARGV: member, epsilon, least wait, then limit and per of
# each window. Returns the wait as a string ('0.000000': started).
ACQUIRE_RATE = Script("acquire_rate", _CLOCK + """
local t = now()
local member, eps, least = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local n = #KEYS / 2

local function nth_latest(starts, turns, limit)
  local all = {}
  for _, z in ipairs({starts, turns}) do
    local found = redis.call('ZREVRANGE', z, 0, limit - 1, 'WITHSCORES')
    for i = 2, #found, 2 do all[#all + 1] = tonumber(found[i]) end
  end
  if #all < limit then return nil end
  table.sort(all, function(a, b) return a > b end)
  return all[limit]
end

local function wait_in(starts, turns, limit, per)
  local mine = redis.call('ZSCORE', turns, member)
  if mine and tonumber(mine) > t + eps then return tonumber(mine) - t end
  if mine then
    if redis.call('ZCARD', starts) < limit then return 0 end
    local oldest = redis.call('ZRANGE', starts, 0, 0, 'WITHSCORES')
    return math.max(tonumber(oldest[2]) + per - t, least)
  end
  local nth = nth_latest(starts, turns, limit)
  if not nth then return 0 end
  return math.max(nth + per - t, least)
end

local longest = 0
for i = 1, n do
  local starts, turns = KEYS[2 * i - 1], KEYS[2 * i]
  local limit, per = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])
  redis.call('ZREMRANGEBYSCORE', starts, '-inf', t - per)
  redis.call('ZREMRANGEBYSCORE', turns, '-inf', t - per)
  longest = math.max(longest, wait_in(starts, turns, limit, per))
end
for i = 1, n do
  local starts, turns = KEYS[2 * i - 1], KEYS[2 * i]
  local per = tonumber(ARGV[3 + 2 * i])
  if longest <= 0 then
    redis.call('ZADD', starts, t, member .. '@' .. string.format('%.6f', t))
    redis.call('ZREM', turns, member)
  else
    redis.call('ZADD', turns, t + longest, member)
  end
  redis.call('PEXPIRE', starts, math.ceil(per * 1000) + 1000)
  local last = redis.call('ZRANGE', turns, -1, -1, 'WITHSCORES')
  if last[2] then
    redis.call('PEXPIRE', turns, math.ceil((tonumber(last[2]) - t + per) * 1000) + 1000)
  end
end
return string.format('%.6f', longest)
""")


def slot_keys(prefix: str, key: str) -> list[str]:
    tag = f"{{{prefix}:slot:{key}}}"
    return [f"{tag}:{name}" for name in ("h", "w", "u", "i", "n")]


_SLOTS = _CLOCK + """
local h, w, u, info, seq = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]

local function parse(v)
  return string.match(v, '^([^|]*)|([^|]*)|(.*)$')  -- patience, woken, queue
end

local function expire(t)
  redis.call('ZREMRANGEBYSCORE', h, '-inf', t)
  local gone = redis.call('ZRANGEBYSCORE', u, '-inf', t)
  if #gone > 0 then
    redis.call('ZREM', w, unpack(gone))
    redis.call('ZREM', u, unpack(gone))
    redis.call('HDEL', info, unpack(gone))
  end
end

local function leave(id)
  redis.call('ZREM', w, id)
  redis.call('ZREM', u, id)
  redis.call('HDEL', info, id)
end

-- mark the first waiters, as many as there are free slots, woken (once each)
local function wake(limit, t)
  local out = {}
  local free = limit - redis.call('ZCARD', h)
  if free <= 0 then return out end
  for _, id in ipairs(redis.call('ZRANGE', w, 0, free - 1)) do
    local patience, woken, queue = parse(redis.call('HGET', info, id))
    if woken == '0' then
      redis.call('HSET', info, id, patience .. '|1|' .. queue)
      redis.call('ZADD', u, t + tonumber(patience), id)
      out[#out + 1] = queue
      out[#out + 1] = id
    end
  end
  return out
end

-- keep every key until just past its last live entry
local function touch(t)
  local last = t
  for _, z in ipairs({h, u}) do
    local top = redis.call('ZRANGE', z, -1, -1, 'WITHSCORES')
    if top[2] and tonumber(top[2]) > last then last = tonumber(top[2]) end
  end
  local ttl = math.ceil((last - t) * 1000) + 60000
  for _, k in ipairs({h, w, u, info, seq}) do redis.call('PEXPIRE', k, ttl) end
end
"""

# ARGV: limit, holder, lease, queue, patience. Returns {granted (1/0), {queue, id, ...}}.
ACQUIRE_SLOT = Script("acquire_slot", _SLOTS + """
local t = now()
expire(t)
local limit, holder = tonumber(ARGV[1]), ARGV[2]
local granted = redis.call('ZSCORE', h, holder) ~= false
if not granted then
  local free = limit - redis.call('ZCARD', h)
  if free > 0 then
    local rank = redis.call('ZRANK', w, holder)
    if rank then granted = rank < free else granted = redis.call('ZCARD', w) < free end
  end
end
if granted then
  redis.call('ZADD', h, t + tonumber(ARGV[3]), holder)
  leave(holder)
else
  if not redis.call('ZSCORE', w, holder) then
    redis.call('ZADD', w, redis.call('INCR', seq), holder)
  end
  redis.call('HSET', info, holder, ARGV[5] .. '|0|' .. ARGV[4])
  redis.call('ZADD', u, t + tonumber(ARGV[5]), holder)
end
local woken = wake(limit, t)
touch(t)
return {granted and 1 or 0, woken}
""")

# ARGV: limit, holder. Returns {queue, id, ...} to wake.
RELEASE_SLOT = Script("release_slot", _SLOTS + """
local t = now()
expire(t)
redis.call('ZREM', h, ARGV[2])
leave(ARGV[2])
local woken = wake(tonumber(ARGV[1]), t)
touch(t)
return woken
""")

# ARGV: lease, holder. Returns 1 if renewed, 0 if the slot was lost.
RENEW_SLOT = Script("renew_slot", _SLOTS + """
local t = now()
local expiry = redis.call('ZSCORE', h, ARGV[2])
if not expiry or tonumber(expiry) <= t then return 0 end
redis.call('ZADD', h, t + tonumber(ARGV[1]), ARGV[2])
touch(t)
return 1
""")

# ARGV: holder. Returns 1 if it waits in line and was woken.
SLOT_WOKEN = Script("slot_woken", _SLOTS + """
local t = now()
expire(t)
local found = redis.call('HGET', info, ARGV[1])
if not found then return 0 end
local _, woken = parse(found)
return woken == '1' and 1 or 0
""")
