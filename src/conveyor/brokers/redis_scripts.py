"""Key layout and Lua scripts of the Redis store, shared by its sync and async sides.

Every queue ``Q`` under the prefix ``P`` keeps its keys behind one hash tag, ``{P:Q}``, so each
script below touches a single hash slot (Redis Cluster executes a script only when all its keys
live in one slot). The keys of a queue (each script receives, as ``KEYS``, the ones it uses, in
this order):

=========== ====== ==========================================================================
``ready``   zset   due messages, scored ``(9 - priority) * 2^44 + sequence`` (9 first, FIFO)
``delayed`` zset   messages waiting for their ETA (or retry backoff), scored by the ETA
``leased``  zset   in-flight messages, scored by the expiry of their lease
``dead``    zset   dead letters, scored by when they failed
``body``    hash   id -> body; an id is in the queue exactly while it has a body here
``meta``    hash   id -> ``"<ready score>|<eta>|<content type>"``
``att``     hash   id -> attempts so far (incremented by every claim, never reset)
``dlv``     hash   id -> hand-outs since publish, retry or replay (a give-back takes one off)
``tok``     hash   id -> lease token of the current holder; present exactly while leased
``why``     hash   id -> dead-letter reason
``seq``     string the queue's sequence counter
=========== ====== ==========================================================================

A message id is always in exactly one of the four sorted sets: each script moves it in one step,
so no crash (of a client or between two commands) can leave it in none or in two. Keys outside a
queue (the queue registry, results, chord counters) each live in their own slot and are never
touched together with a queue's keys.

Scripts read the clock with ``TIME``, so leases and ETAs are judged by the server's clock, not by
the clocks of the many consumers. Times travel as strings: Lua numbers returned to the client
would be truncated to integers.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

#: The keys of one queue: the single declaration of the layout. Each queue script names the ones
#: it uses; it receives them in this order, and its Lua prelude binds them to these names.
QUEUE_KEYS = ("ready", "delayed", "leased", "dead", "body", "meta", "att", "dlv", "tok", "why",
              "seq")

#: One priority band holds 2^44 sequence numbers; ten bands stay below 2^53, exact in a double.
BAND = 2**44

#: The most messages one claim script call hands out; Lua's ``unpack`` has a bounded stack.
MAX_CLAIM = 1000


def queue_keys(prefix: str, queue: str) -> dict[str, str]:
    """The keys of ``queue`` by name, all behind the hash tag ``{P:Q}``."""
    tag = f"{{{prefix}:{queue}}}"
    return {name: f"{tag}:{name}" for name in QUEUE_KEYS}


def registry_key(prefix: str) -> str:
    """The set of queue names ever published to under ``prefix``."""
    return f"{prefix}:queues"


def wake_channel(prefix: str, queue: str) -> str:
    """The pub/sub channel on which a queue announces new or returned messages."""
    return f"{prefix}:wake:{queue}"


def result_key(prefix: str, task_id: str) -> str:
    """The string holding a task's result record."""
    return f"{prefix}:result:{task_id}"


def result_channel(prefix: str, task_id: str) -> str:
    """The pub/sub channel announcing a task's final result."""
    return f"{prefix}:done:{task_id}"


def member_key(prefix: str, key: str) -> str:
    """The set behind :meth:`ResultBackend.count_member`."""
    return f"{prefix}:members:{key}"


@dataclass(frozen=True)
class Script:
    """A Lua script, run with EVALSHA and loaded with EVAL when the server does not know it.
    ``keys`` names the queue keys a queue script receives (empty for the others)."""

    name: str
    source: str
    keys: tuple[str, ...] = ()
    sha: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sha", hashlib.sha1(self.source.encode()).hexdigest())


# Store the record "final|attempt|state|data" at `key` (ttl in ms, 0: none) under the fencing
# rule: refused (0) over a final record or over a record of a later attempt; a final record is
# announced on `channel`. 1 when stored.
_STORE_RECORD = """
local function store_record(key, record, ttl, channel)
  local final, attempt = string.match(record, '^(%d)|(%-?%d+)|')
  local current = redis.call('GET', key)
  if current then
    local was_final, was_attempt = string.match(current, '^(%d)|(%-?%d+)|')
    if was_final == '1' or tonumber(was_attempt) > tonumber(attempt) then return 0 end
  end
  if tonumber(ttl) > 0 then
    redis.call('SET', key, record, 'PX', ttl)
  else
    redis.call('SET', key, record)
  end
  if final == '1' then redis.call('PUBLISH', channel, '') end
  return 1
end
"""

_PRELUDE = f"""
local BAND = {BAND}

local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function fmt_time(t)
  return string.format('%.6f', t)
end

-- meta is "<ready score>|<eta>|<content type>"; the content type goes last as it may hold '|'
local function split_meta(m)
  return string.match(m, '^([^|]*)|([^|]*)|(.*)$')
end

local function ready_score(id)
  local score = split_meta(redis.call('HGET', meta, id))
  return score
end

-- a fresh place at the end of the message's priority band (a retry or a replay queues up anew)
local function renumber(id, eta)
  local score, _, ctype = split_meta(redis.call('HGET', meta, id))
  local band = math.floor(tonumber(score) / BAND)
  local fresh = string.format('%.0f', band * BAND + redis.call('INCR', seq))
  redis.call('HSET', meta, id, fresh .. '|' .. eta .. '|' .. ctype)
  return fresh
end

-- move up to 500 entries of zset `from` whose score is <= t back to ready, at their old place
local function move_due(from, t, drop_token)
  local ids = redis.call('ZRANGEBYSCORE', from, '-inf', t, 'LIMIT', 0, 500)
  for _, id in ipairs(ids) do
    redis.call('ZADD', ready, ready_score(id), id)
    if drop_token then redis.call('HDEL', tok, id) end
  end
  if #ids > 0 then redis.call('ZREM', from, unpack(ids)) end
end

local function promote(t)
  move_due(delayed, t, false)
  move_due(leased, t, true)
end

-- the earliest time more may become claimable: now if anything is ready, else the first ETA or
-- lease expiry, else '' (nothing pending)
local function next_due(t)
  if redis.call('ZCARD', ready) > 0 then return fmt_time(t) end
  local best = nil
  for _, z in ipairs({{delayed, leased}}) do
    local first = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
    if first[2] and (best == nil or tonumber(first[2]) < best) then best = tonumber(first[2]) end
  end
  if best then return fmt_time(best) end
  return ''
end

-- 1: `token` holds the lease of `id`; 0: the message is gone or dead (a repeated settle, no-op);
-- -1: the lease passed to another consumer or the message went back to the queue
local function holder(id, token)
  local current = redis.call('HGET', tok, id)
  if current == token then return 1 end
  if not current and (redis.call('HEXISTS', body, id) == 0 or redis.call('ZSCORE', dead, id)) then
    return 0
  end
  return -1
end

-- The result record "final|attempt|state|data" of a claimed task: made STARTED (same TTL) when
-- it is not final, wants a STARTED state (its data is not the untracked marker '-') and is not
-- from a later attempt. Returns the record's state after that ('' when there is none).
local function mark_started(key, attempt)
  local current = redis.call('GET', key)
  if not current then return '' end
  local final, att, state, data = string.match(current, '^(%d)|(%-?%d+)|([^|]*)|(.*)$')
  if final == '1' or data == '-' or tonumber(att) > attempt then return state end
  local ttl = redis.call('PTTL', key)
  local record = '0|' .. attempt .. '|STARTED|'
  if ttl > 0 then redis.call('SET', key, record, 'PX', ttl) else redis.call('SET', key, record) end
  return 'STARTED'
end

-- Write a PENDING record unless a final one, or one of a later attempt, is there (most often
-- there is none: one SET NX).
local function pending(key, record)
  if redis.call('SET', key, record, 'PX', ARGV[3], 'NX') then return end
  local current = redis.call('GET', key)
  local final, attempt = nil, nil
  if current then final, attempt = string.match(current, '^(%d)|(%-?%d+)|') end
  if not current or (final ~= '1' and tonumber(attempt) <= 0) then
    redis.call('SET', key, record, 'PX', ARGV[3])
  end
end

local function unlease(id)
  redis.call('ZREM', leased, id)
  redis.call('HDEL', tok, id)
end

-- the fields of every id of `ids` deleted from each hash of `hashes`, a thousand ids a call
-- (unpack's stack is bounded)
local function forget_all(ids, hashes)
  for i = 1, #ids, 1000 do
    local chunk = {{unpack(ids, i, math.min(i + 999, #ids))}}
    for _, h in ipairs(hashes) do redis.call('HDEL', h, unpack(chunk)) end
  end
end

-- the acked messages `ids` gone from the queue: out of leased and every hash of a message
local function drop_acked(ids)
  for i = 1, #ids, 1000 do
    redis.call('ZREM', leased, unpack(ids, i, math.min(i + 999, #ids)))
  end
  forget_all(ids, {{tok, body, meta, att, dlv}})
end
"""


#: The helpers above, each with the name it defines (none for the constants), in their order:
#: a helper calls only helpers defined before it.
_HELPERS = [(m.group(1) if (m := re.search(r"local function (\w+)", chunk)) else "", chunk)
            for chunk in (_STORE_RECORD + _PRELUDE).split("\n\n") if chunk.strip()]


def _helpers_for(body: str) -> str:
    """The helpers ``body`` calls, directly or through other helpers, in their order: a script
    defines only what it runs (defining them all cost every call about 6 µs in Redis)."""
    wanted, chosen = set(re.findall(r"(\w+)\(", body)), []
    for name, chunk in reversed(_HELPERS):
        if not name or name in wanted:
            chosen.append(chunk)
            wanted.update(re.findall(r"(\w+)\(", chunk))
    return "\n\n".join(reversed(chosen)) + "\n"


def _queue_script(name: str, keys: str, body: str) -> Script:
    """A script over the queue keys named in ``keys``; the other names are bound to nil, so a
    helper that needs a key the script was not given fails loudly instead of touching another."""
    used = tuple(k for k in QUEUE_KEYS if k in keys.split())
    if len(used) != len(keys.split()):
        raise ValueError(f"{name}: unknown keys in {keys!r}")
    bindings = "\n".join(
        f"local {k} = KEYS[{used.index(k) + 1}]" if k in used else f"local {k} = nil"
        for k in QUEUE_KEYS)
    return Script(name, bindings + "\n" + _helpers_for(body) + body, used)


# ARGV: wake channel, result key prefix ('' : no records), record ttl in ms, then six per
# message: id, body, priority, content type, eta ('' if none), its encoded result record ('' if
# none). An id already present in the queue is left alone, so re-sending a publish is harmless.
# With a result key prefix each added message's record (PENDING) is written in the same step,
# unless a final record or one of a later attempt is there: that touches keys outside the
# queue's slot, so only on a single server.
PUBLISH = _queue_script("publish", "ready delayed body meta seq", """
local t = nil  -- the server's time, read only for a message with an ETA
local n = (#ARGV - 3) / 6
local first = redis.call('INCRBY', seq, n) - n + 1
local added = 0
for i = 0, n - 1 do
  local at = 4 + i * 6
  local id, eta = ARGV[at], ARGV[at + 4]
  if redis.call('HSETNX', body, id, ARGV[at + 1]) == 1 then
    local score = string.format('%.0f', (9 - tonumber(ARGV[at + 2])) * BAND + first + i)
    redis.call('HSET', meta, id, score .. '|' .. eta .. '|' .. ARGV[at + 3])
    if eta ~= '' then t = t or now() end
    if eta ~= '' and tonumber(eta) > t then
      redis.call('ZADD', delayed, eta, id)
    else
      redis.call('ZADD', ready, score, id)
    end
    if ARGV[2] ~= '' and ARGV[at + 5] ~= '' then pending(ARGV[2] .. id, ARGV[at + 5]) end
    added = added + 1
  end
end
redis.call('PUBLISH', ARGV[1], '')
return added
""")

# ARGV: limit, lease seconds, token prefix, result key prefix ('' : leave results alone).
# Returns {next due, {id, body, meta, attempt, token, ready score, deliveries, record, ...}}.
# Due delayed messages and expired leases go back to ready first. With a result key prefix,
# each claimed task's result record is looked at: a tracked, not final one becomes STARTED
# (see `mark_started`), and its state comes back, so a worker skips tasks that already ended.
# That touches keys outside the queue's slot: only on a single server (not Redis Cluster).
CLAIM = _queue_script("claim", "ready delayed leased body meta att dlv tok", """
local t = now()
promote(t)
local out = {}
local popped = redis.call('ZPOPMIN', ready, tonumber(ARGV[1]))
if #popped > 0 then
  local ids, scores = {}, {}
  for i = 1, #popped, 2 do
    ids[#ids + 1] = popped[i]
    scores[#scores + 1] = popped[i + 1]
  end
  local bodies = redis.call('HMGET', body, unpack(ids))
  local metas = redis.call('HMGET', meta, unpack(ids))
  local expiry = fmt_time(t + tonumber(ARGV[2]))
  local leases, tokens = {}, {}
  for i, id in ipairs(ids) do
    local token = ARGV[3] .. i
    local attempt = redis.call('HINCRBY', att, id, 1)
    local deliveries = redis.call('HINCRBY', dlv, id, 1)
    leases[#leases + 1] = expiry
    leases[#leases + 1] = id
    tokens[#tokens + 1] = id
    tokens[#tokens + 1] = token
    local record = ''
    if ARGV[4] ~= '' then record = mark_started(ARGV[4] .. id, attempt) end
    local at = #out  -- eight fields per message, in place (no table of its own)
    out[at + 1], out[at + 2], out[at + 3], out[at + 4] = id, bodies[i], metas[i], attempt
    out[at + 5], out[at + 6], out[at + 7], out[at + 8] = token, scores[i], deliveries, record
  end
  redis.call('ZADD', leased, unpack(leases))
  redis.call('HSET', tok, unpack(tokens))
end
return {next_due(t), out}
""")

# ARGV: limit. Returns {next due, {id, score, ...}}: the first `limit` ready messages, after
# promoting due ones, so a consumer of several queues can pick across them by priority.
PEEK = _queue_script("peek", "ready delayed leased meta tok", """
local t = now()
promote(t)
return {next_due(t), redis.call('ZRANGE', ready, 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')}
""")

# ARGV: result key prefix, result channel prefix, then per message: id, token; with a result
# key prefix (single server only: the records are outside the queue's slot), id, token, its
# encoded result record ('' for none), the record's ttl in ms. Each record is stored under the
# fencing rule (see `store_record`) just before its message is acked, whether or not the ack
# then finds the lease held, as a separate store would. The acked messages' keys are deleted
# together at the end, a few variadic calls for the whole batch. Returns one status per message
# (see `holder`; a message acked earlier in the same call is gone: 0).
ACK = _queue_script("ack", "leased dead body meta att dlv tok", """
local out, acked, seen = {}, {}, {}
local stride = 2
if ARGV[1] ~= '' then stride = 4 end
for i = 3, #ARGV, stride do
  local id = ARGV[i]
  if stride == 4 and ARGV[i + 2] ~= '' then
    store_record(ARGV[1] .. id, ARGV[i + 2], ARGV[i + 3], ARGV[2] .. id)
  end
  local status = 0  -- acked earlier in this call: gone, as its deletion below will make it
  if not seen[id] then status = holder(id, ARGV[i + 1]) end
  if status == 1 then
    seen[id] = true
    acked[#acked + 1] = id
  end
  out[#out + 1] = status
end
drop_acked(acked)
return out
""")

# ARGV: id, token, delay seconds, wake channel, keep count ("1": a deferral, see
# Delivery.retry)[, new body]. Returns the holder status.
RETRY = _queue_script("retry", "ready delayed leased dead body meta dlv tok seq", """
local id = ARGV[1]
local status = holder(id, ARGV[2])
if status ~= 1 then return status end
local t, delay = now(), tonumber(ARGV[3])
unlease(id)
if ARGV[5] == '1' and redis.call('HINCRBY', dlv, id, -1) > 0 then
  -- a deferral: this hand-out is taken off, the earlier ones stay counted
else
  redis.call('HDEL', dlv, id)
end
if #ARGV >= 6 then redis.call('HSET', body, id, ARGV[6]) end
local eta = fmt_time(t + delay)
local score = renumber(id, eta)
if delay > 0 then
  redis.call('ZADD', delayed, eta, id)
else
  redis.call('ZADD', ready, score, id)
end
redis.call('PUBLISH', ARGV[4], '')
return 1
""")

# ARGV: id, token, reason. Returns the holder status.
DEAD = _queue_script("dead", "leased dead body tok why", """
local id = ARGV[1]
local status = holder(id, ARGV[2])
if status ~= 1 then return status end
unlease(id)
redis.call('ZADD', dead, fmt_time(now()), id)
redis.call('HSET', why, id, ARGV[3])
return 1
""")

# ARGV: id, token, wake channel. Back to its old place in ready. Returns the holder status.
RELEASE = _queue_script("release", "ready leased dead body meta dlv tok", """
local id = ARGV[1]
local status = holder(id, ARGV[2])
if status ~= 1 then return status end
unlease(id)
if tonumber(redis.call('HINCRBY', dlv, id, -1)) <= 0 then redis.call('HDEL', dlv, id) end
redis.call('ZADD', ready, ready_score(id), id)
redis.call('PUBLISH', ARGV[3], '')
return 1
""")

# ARGV: lease seconds, id, token, id, token, ... Returns the tokens that no longer hold a lease.
RENEW = _queue_script("renew", "leased tok", """
local expiry = fmt_time(now() + tonumber(ARGV[1]))
local lost = {}
for i = 2, #ARGV, 2 do
  if redis.call('HGET', tok, ARGV[i]) == ARGV[i + 1] then
    redis.call('ZADD', leased, expiry, ARGV[i])
  else
    lost[#lost + 1] = ARGV[i + 1]
  end
end
return lost
""")

# Returns {ready, in flight, delayed, dead}; expired leases and due ETAs count as ready.
STATS = _queue_script("stats", "ready delayed leased dead", """
local t = now()
local due = redis.call('ZCOUNT', delayed, '-inf', t)
local expired = redis.call('ZCOUNT', leased, '-inf', t)
return {
  redis.call('ZCARD', ready) + due + expired,
  redis.call('ZCARD', leased) - expired,
  redis.call('ZCARD', delayed) - due,
  redis.call('ZCARD', dead),
}
""")

# Deletes the ready and delayed messages (not in-flight, not dead). Returns how many.
PURGE = _queue_script("purge", "ready delayed body meta att dlv", """
local ids = redis.call('ZRANGE', ready, 0, -1)
for _, id in ipairs(redis.call('ZRANGE', delayed, 0, -1)) do ids[#ids + 1] = id end
forget_all(ids, {body, meta, att, dlv})
redis.call('DEL', ready, delayed)
return #ids
""")

# ARGV: limit. Returns {id, failed at, body, meta, reason, ...}, oldest first.
DEAD_LETTERS = _queue_script("dead_letters", "dead body meta why", """
local found = redis.call('ZRANGE', dead, 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
local out = {}
for i = 1, #found, 2 do
  local id = found[i]
  for _, v in ipairs({id, found[i + 1], redis.call('HGET', body, id),
                      redis.call('HGET', meta, id), redis.call('HGET', why, id)}) do
    out[#out + 1] = v
  end
end
return out
""")

# ARGV: wake channel, then the ids to replay (none: every dead letter). Returns how many moved.
REPLAY = _queue_script("replay", "ready dead meta dlv why seq", """
local ids = {}
if #ARGV > 1 then
  for i = 2, #ARGV do ids[#ids + 1] = ARGV[i] end
else
  ids = redis.call('ZRANGE', dead, 0, -1)
end
local moved = 0
for _, id in ipairs(ids) do
  if redis.call('ZREM', dead, id) == 1 then
    redis.call('HDEL', why, id)
    redis.call('HDEL', dlv, id)
    redis.call('ZADD', ready, renumber(id, ''), id)
    moved = moved + 1
  end
end
if moved > 0 then redis.call('PUBLISH', ARGV[1], '') end
return moved
""")

# Deletes every dead letter of the queue. Returns how many.
PURGE_DEAD = _queue_script("purge_dead", "dead body meta att dlv why", """
local ids = redis.call('ZRANGE', dead, 0, -1)
forget_all(ids, {body, meta, att, dlv, why})
redis.call('DEL', dead)
return #ids
""")

# KEYS: result key. ARGV: the encoded record, its ttl in ms (0: none), the result channel.
# Returns 1 if stored, 0 if refused by the fencing rule (see `store_record`).
STORE_RESULT = Script("store_result", _STORE_RECORD + """
return store_record(KEYS[1], ARGV[1], ARGV[2], ARGV[3])
""")

# KEYS: the member set. ARGV: member, ttl in ms. Returns the set's size.
COUNT_MEMBER = Script("count_member", """
redis.call('SADD', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return redis.call('SCARD', KEYS[1])
""")
