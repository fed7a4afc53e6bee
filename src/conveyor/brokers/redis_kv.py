"""The Redis store's coordination values: one string key each (``{prefix}:kv:{key}``, its own
hash slot), with ``SET NX PX`` for put-if-absent and a script for compare-and-set."""

from __future__ import annotations

from typing import Any

from .redis_scripts import Script


def value_key(prefix: str, key: str) -> str:
    return f"{prefix}:kv:{key}"


def ttl_ms(ttl: float) -> int:
    return max(1, int(ttl * 1000))


def seconds_left(pttl: int) -> float | None:
    """A ``PTTL`` reply in seconds: None for a missing key (-2). Every value is set with a
    TTL, so -1 (no expiry) is a key written by something else; it reads as never running out."""
    if pttl == -2:
        return None
    return float("inf") if pttl == -1 else pttl / 1000


# KEYS: the value key. ARGV: expected ('' with ARGV[2] == '0': absent), expected given ('1'/'0'),
# new value ('' with ARGV[5] == '0': delete), ttl in ms, new value given ('1'/'0').
COMPARE_AND_SET = Script("compare_and_set", """
local current = redis.call('GET', KEYS[1])
if ARGV[2] == '1' then
  if current ~= ARGV[1] then return 0 end
elseif current then
  return 0
end
if ARGV[5] == '1' then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
else
  redis.call('DEL', KEYS[1])
end
return 1
""")

# KEYS: the value key. ARGV: value, ttl in ms. Returns nil when set, else the value held.
PUT_IF_ABSENT = Script("put_if_absent", """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end
return redis.call('GET', KEYS[1])
""")


def cas_args(expected: bytes | None, value: bytes | None, ttl: float) -> list[Any]:
    return [expected or b"", "0" if expected is None else "1", value or b"", ttl_ms(ttl),
            "0" if value is None else "1"]
