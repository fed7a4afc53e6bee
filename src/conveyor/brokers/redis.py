"""The Redis store: a pull broker and a result backend on Redis (redis-py, hiredis): one
server, one followed through Sentinel, or a Redis Cluster.

URLs::

    redis://[[user]:password@]host[:port][/db][?prefix=NAME&socket_timeout=S...]
    rediss://...                                   TLS (redis-py's ssl_* query options apply)
    redis+sentinel://[[user]:password@]host:port,host:port/SERVICE[/db][?sentinel_password=...]
    redis+cluster://[[user]:password@]host:port,host:port[?prefix=...]   (or ?cluster=true)

Any of them takes ``wait_replicas=N&wait_timeout_ms=MS``: writes that confirm an enqueue or an
outcome are followed by ``WAIT`` and raise :class:`~conveyor.errors.NotReplicated` when fewer
than N replicas acknowledged them in time (see :mod:`conveyor.brokers.redis_cluster`).

``prefix`` (default ``conveyor``) namespaces every key, so several applications or test runs can
share one server. Passwords never appear in :attr:`RedisStore.url`, reprs or error messages.

Layout and atomicity (see :mod:`conveyor.brokers.redis_scripts` for the keys): every operation
that changes a queue is one Lua script over that queue's keys, which share the hash tag
``{prefix:queue}``. A script touches one hash slot only, which is what Redis Cluster requires;
a consumer of several queues claims in two steps (peek at every queue, then claim from the chosen
ones) because no script may span queues. A claim moves ids from the ready set to the leased set
in the same script that returns their bodies, so a consumer dying right after the claim leaves
them leased, and they return to the queue when the lease expires.

Priorities 0-9 are real: the ready set is scored by priority band, then by a per-queue sequence.
Delayed messages (ETA, retry backoff) wait in a sorted set and move to ready inside the claim
script once due, judged by the server's clock.

Wake-ups: publishing (and every release or retry) ``PUBLISH``-es on the queue's channel; an idle
consumer waits on one shared pub/sub connection per event loop instead of polling. Results are
announced the same way, and a waiter subscribes before it reads, so an arrival cannot slip between.

Eviction: :func:`open_store` refuses a server whose ``maxmemory-policy`` may evict keys without a
TTL (``allkeys-*``): that would silently drop queued messages. ``noeviction`` and ``volatile-*``
are accepted (only results and chord counters carry a TTL). If ``CONFIG GET`` is not permitted
the check is skipped with a warning.

Failures: redis-py's connection and timeout errors become :class:`BrokerUnavailable` at this
module's boundary. Producers see them at once (redis-py's own retries are disabled: re-sending a
script whose reply was lost could claim twice). Consumers ride out an outage: a failed claim
reports "nothing yet, look again after a capped exponential backoff" to the consumer loop, a
failed wait sleeps, a failed renewal is logged and tried again at the next renewal (a lease that
ran out meanwhile is simply lost), a failed release is logged (the lease expiry returns the
message), and the pub/sub connection reconnects by itself. Acks, retries and dead-letters raise,
and the message is redelivered after its lease: delivery is at least once.

Round trips: a publish of any size is one (one script per queue in a pipeline), its PENDING
records written by the same scripts (``publish_tracked``); a consumer's step after a task is one:
the settles waiting for it (a result carried by a settle included) and the next claim in one
pipeline, the claim script recording the claimed tasks' STARTED states as well (two round trips
for several queues: peek, then claim); acks issued while another is in flight share the next
one. A carried result is stored just before its settle, in the same pipeline but not the same
script (its key is in another hash slot), so it is fenced by its attempt, as a separate write
would be. Commands go out on connections of redis-py's pools but without its per-command
machinery (see :class:`_SyncWire`), packed by hiredis.

On one server (and behind Sentinel) the publish and claim scripts also read and write result
records, whose keys are not declared to the script (they live in other hash slots). A cluster
would refuse that, so there the plans differ in three places only (``_Plans.cluster``): PENDING
records are stored by calls of their own before the publish, the claim leaves STARTED to the
worker, and ``get_many`` is one GET per key. Commands are routed per slot by
:class:`~conveyor.brokers.redis_cluster.SyncClusterWire` and its async twin, in stages that keep
a result ahead of the acknowledgement that depends on it.

Republishing an id that is still in its queue (ready, delayed, in flight or dead) leaves the
queue as it is, so a producer may safely repeat a publish whose reply it did not get.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import importlib
import logging
import math
import secrets
import select
import socket
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar
from urllib.parse import SplitResult, parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from redis.backoff import NoBackoff
from redis.exceptions import (
    AskError,
    ClusterDownError,
    NoScriptError,
    ReadOnlyError,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.retry import Retry

from ..clock import SYSTEM, Clock, Deadline
from ..errors import BrokerError, BrokerUnavailable, ConfigurationError, LeaseLost, NotReplicated
from ..events import Event, Retention, after_cursor
from ..urls import mask_url as mask
from . import redis_cluster as cluster
from . import redis_control as control_redis
from . import redis_events as events_redis
from . import redis_kv as kv
from . import redis_limits as limits_redis
from . import redis_scripts as lua
from .base import (
    Claim,
    ClaimBatch,
    ConcurrencySlots,
    ControlLog,
    Coordination,
    DeadLetter,
    DeadLetterAdmin,
    DelayedWake,
    Envelope,
    EventLog,
    PullBroker,
    QueueAdmin,
    QueueStats,
    RateLimiter,
    RateWindow,
    ResultBackend,
    ResultWrite,
    Revocations,
    Settle,
    StoredResult,
    Waiter,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")

#: Policies under which Redis never evicts a key without a TTL (queue keys have none).
SAFE_EVICTION_POLICIES = frozenset({
    "noeviction", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
})

_DEFAULT_PREFIX = "conveyor"


def _keepalive_options() -> dict[int, int]:
    """TCP keepalive probing (and a bound on unacknowledged sends) where the OS offers them:
    a dead peer is noticed in about 25 s without a timer per read."""
    wanted = {"TCP_KEEPIDLE": 10, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3, "TCP_USER_TIMEOUT": 30000}
    return {getattr(socket, k): v for k, v in wanted.items() if hasattr(socket, k)}


_CLIENT_DEFAULTS: dict[str, Any] = {
    "socket_connect_timeout": 5.0, "socket_keepalive": True,
    "socket_keepalive_options": _keepalive_options(),
}
#: Per-read timeouts: a cheap socket option for the sync client; for the async one redis-py
#: arms a timer per read, which costs about as much as a local round trip, so keepalive it is.
_SYNC_DEFAULTS: dict[str, Any] = {**_CLIENT_DEFAULTS, "socket_timeout": 10.0}
_ASYNC_DEFAULTS: dict[str, Any] = {**_CLIENT_DEFAULTS, "socket_timeout": None}
_PUBLISH_CHUNK = 5000  # messages per publish script call: bounds how long one script blocks Redis
_ACK_BATCH = 500
_BACKOFF_BASE, _BACKOFF_CAP = 0.05, 2.0
_CONFIRM_TIMEOUT = 5.0  # how long to wait for Redis to confirm a SUBSCRIBE
_READ_SLICE = 5.0  # pub/sub reads wake this often even when idle, to notice a dead connection


def open_store(url: str, *, clock: Clock = SYSTEM, **options: Any) -> RedisStore:
    """Open the store for a ``redis://``, ``rediss://`` or ``redis+sentinel://`` URL.

    ``prefix`` may also be given as an option; other options go to the redis-py client (e.g.
    ``max_connections``). Raises ConfigurationError for a bad URL or an evicting server and
    BrokerUnavailable when the server cannot be reached.
    """
    try:
        store = RedisStore(_parse_target(url, dict(options)), clock)
    except (TypeError, ValueError) as exc:  # bad values or options, reported by redis-py
        raise ConfigurationError(f"{mask(url)}: {exc}") from exc
    except RedisError as exc:  # a cluster client reads the slot map when made
        raise BrokerUnavailable(f"cannot reach {mask(url)}: {exc}") from exc
    try:
        store.check_eviction_policy()  # also the first connection: unknown options show here
    except (TypeError, ValueError) as exc:
        store.close()
        raise ConfigurationError(f"{mask(url)}: {exc}") from exc
    except BaseException:
        store.close()
        raise
    return store


# -- URLs -------------------------------------------------------------------------------------

#: redis-py's annotations are partial (many calls are untyped), so its clients, pipelines and
#: pub/subs are handled as ``Any`` behind the few functions of this module that do I/O.
_Client = Any


@dataclass(frozen=True)
class _Target:
    """Where and how to connect: the masked URL, the key prefix and the two client factories."""

    url: str
    prefix: str
    secret: str | None
    make_sync: Callable[[], _Client]
    make_async: Callable[[], _Client]
    #: Redis Cluster: the clients are cluster clients; pub/sub connects with these options.
    cluster_link: dict[str, Any] | None = None
    wait: cluster.Durability | None = None


_TRUE = {"1", "true", "yes", "on"}


def _parse_target(url: str, options: dict[str, Any]) -> _Target:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    prefix = str(options.pop("prefix", None) or query.pop("prefix", None) or _DEFAULT_PREFIX)
    if "{" in prefix or "}" in prefix:
        raise ConfigurationError(f"prefix {prefix!r} must not contain braces (hash tags)")
    # No redis-py retries: re-sending a script whose reply was lost could claim twice.
    options["retry"] = Retry(NoBackoff(), 0)
    secret = unquote(parts.password) if parts.password else None
    wait = cluster.durability(query)
    scheme = parts.scheme.lower()
    if scheme == "redis+sentinel":
        secret = secret or query.get("sentinel_password")
        target = _sentinel_target(url, parts.netloc, parts.path, query, prefix, secret, options)
    elif scheme == "redis+cluster" or query.pop("cluster", "").lower() in _TRUE:
        target = _cluster_target(url, parts, query, prefix, secret, options)
    else:
        target = _single_target(url, parts, query, prefix, secret, options)
    return dataclasses.replace(target, wait=wait)


def _single_target(url: str, parts: SplitResult, query: dict[str, str], prefix: str,
                   secret: str | None, options: dict[str, Any]) -> _Target:
    client_url = urlunsplit(parts._replace(query=urlencode(query)))

    def make_sync() -> _Client:
        return redis.Redis.from_url(client_url, **{**_SYNC_DEFAULTS, **options})

    def make_async() -> _Client:
        return redis.asyncio.Redis.from_url(client_url, **{**_ASYNC_DEFAULTS, **options})

    return _Target(mask(url), prefix, secret, make_sync, make_async)


#: Query options of a cluster URL and how to read them (the rest of redis-py's are refused).
_CLUSTER_QUERY: dict[str, Callable[[str], Any]] = {
    "socket_timeout": float, "socket_connect_timeout": float, "max_connections": int,
    "ssl_cert_reqs": str, "ssl_ca_certs": str, "ssl_certfile": str, "ssl_keyfile": str,
}


def _cluster_target(url: str, parts: SplitResult, query: dict[str, str], prefix: str,
                    secret: str | None, kwargs: dict[str, Any]) -> _Target:
    """``redis+cluster://[user:pw@]h1:p1,h2:p2[/0]``, or ``redis[s]://h:p?cluster=true``:
    any of the nodes serves to discover the others."""
    userinfo, _, hosts = parts.netloc.rpartition("@")
    if not hosts or parts.path.strip("/") not in ("", "0"):
        raise ConfigurationError(
            f"{mask(url)!r}: expected redis+cluster://host:port,host:port (database 0 only)")
    unknown = sorted(set(query) - set(_CLUSTER_QUERY))
    if unknown:
        raise ConfigurationError(f"{mask(url)!r}: unknown options {unknown}")
    options = {**kwargs, **{k: _CLUSTER_QUERY[k](v) for k, v in query.items()}}
    user, _, _ = userinfo.partition(":")
    if user:
        options["username"] = unquote(user)
    if secret:
        options["password"] = secret
    if parts.scheme.lower() == "rediss":
        options["ssl"] = True
    nodes = [_host_port(h, 6379) for h in hosts.split(",")]
    link = {k: v for k, v in options.items() if k in ("username", "password") or
            k.startswith(("socket_", "ssl"))}
    make_sync, make_async = cluster.make_clients(
        nodes, {**_SYNC_DEFAULTS, **options}, {**_ASYNC_DEFAULTS, **options})
    return _Target(mask(url), prefix, secret, make_sync, make_async,
                   cluster_link={**_ASYNC_DEFAULTS, **link})


def _sentinel_target(url: str, netloc: str, path: str, query: dict[str, str], prefix: str,
                     secret: str | None, kwargs: dict[str, Any]) -> _Target:
    """``redis+sentinel://[user:pw@]h1:p1,h2:p2/service[/db]``: the master of ``service``."""
    userinfo, _, hosts = netloc.rpartition("@")
    segments = [s for s in path.split("/") if s]
    if not segments or not hosts:
        raise ConfigurationError(f"{mask(url)!r}: expected redis+sentinel://host:port,.../service")
    sentinels = [_host_port(h, 26379) for h in hosts.split(",")]
    service = unquote(segments[0])
    options, sentinel_password = _sentinel_options(url, userinfo, segments, query, kwargs)

    def make(module: Any, defaults: dict[str, Any]) -> _Client:
        merged = {**defaults, **options}
        # Sentinels get the same socket settings; only the password differs from the master's.
        side = {k: v for k, v in merged.items() if k.startswith("socket_")}
        if sentinel_password:
            side["password"] = sentinel_password
        return module.Sentinel(sentinels, sentinel_kwargs=side, **merged).master_for(service)

    return _Target(mask(url), prefix, secret, lambda: make(redis.sentinel, _SYNC_DEFAULTS),
                   lambda: make(redis.asyncio.sentinel, _ASYNC_DEFAULTS))


def _sentinel_options(url: str, userinfo: str, segments: list[str], query: dict[str, str],
                      kwargs: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The master's connection options from a sentinel URL, and the sentinels' password."""
    options = dict(kwargs, db=int(segments[1]) if len(segments) > 1 else 0)
    for name in ("socket_timeout", "socket_connect_timeout"):
        if name in query:
            options[name] = float(query.pop(name))
    sentinel_password = query.pop("sentinel_password", None)
    if query:
        raise ConfigurationError(f"{mask(url)!r}: unknown options {sorted(query)}")
    user, _, password = userinfo.partition(":")
    if user:
        options["username"] = unquote(user)
    if password:
        options["password"] = unquote(password)
    return options, sentinel_password


def _host_port(text: str, default: int) -> tuple[str, int]:
    """``host[:port]`` or ``[ipv6][:port]``."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = text.partition(":")
    return host, int(port) if port else default


# -- plans: what to send and how to read the replies, independent of sync or async I/O ---------

@dataclass(frozen=True, slots=True)
class _Call:
    """One command; for EVALSHA, ``script`` lets a NOSCRIPT reply be answered with EVAL."""

    args: tuple[Any, ...]
    script: lua.Script | None = None

    def as_eval(self) -> tuple[Any, ...]:
        assert self.script is not None
        return ("EVAL", self.script.source, *self.args[2:])


@dataclass(frozen=True, slots=True)
class _Op(Generic[T]):
    """Commands sent in one round trip (a pipeline) and the function that reads their replies.

    ``stages``: where a call must wait for every call before it, on a cluster whose masters are
    otherwise asked at once (on one server the pipeline keeps the order anyway). ``durable``:
    the writes are followed by ``WAIT`` when the URL asks for it.
    """

    calls: list[_Call]
    parse: Callable[[list[Any]], T]
    stages: tuple[int, ...] = ()
    durable: bool = False


def _unrenewed(claims: Sequence[Claim], exc: BrokerUnavailable) -> set[str]:
    log.warning("could not renew %d leases: %s", len(claims), exc)
    return set()


def _both(first: _Op[A], second: _Op[B]) -> _Op[tuple[A, B]]:
    """Two operations in one round trip, in that order."""
    split = len(first.calls)
    return _Op(first.calls + second.calls,
               lambda replies: (first.parse(replies[:split]), second.parse(replies[split:])),
               (*first.stages, *(split + s for s in second.stages)),
               first.durable or second.durable)


def _then(first: _Op[Any], second: _Op[T]) -> _Op[T]:
    """``first`` done everywhere before ``second`` starts; the replies of ``second``."""
    split = len(first.calls)
    both = _both(first, second)
    return _Op(both.calls, lambda replies: second.parse(replies[split:]),
               (*both.stages, split), both.durable)


def _script(script: lua.Script, keys: Sequence[str | bytes], args: Iterable[Any]) -> _Call:
    return _Call(("EVALSHA", script.sha, len(keys), *keys, *args), script)


def _missing_scripts(replies: list[Any]) -> list[int]:
    """Indexes of the calls the server answered with NOSCRIPT (they did not run)."""
    return [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]


def _raise_errors(replies: list[Any]) -> list[Any]:
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def _time(raw: bytes | str) -> float | None:
    return float(raw) if raw else None


def _lost(claim: Claim) -> LeaseLost:
    return LeaseLost(f"lease of message {claim.envelope.id} passed to another consumer")


def _check_status(claim: Claim, status: int) -> None:
    if status < 0:
        raise _lost(claim)


def _envelope(queue: str, msg_id: bytes, body: bytes, meta: bytes) -> Envelope:
    score, eta, content_type = meta.split(b"|", 2)
    return Envelope(
        id=msg_id.decode(), queue=queue, body=body, content_type=content_type.decode(),
        priority=9 - int(score) // lua.BAND, eta=_time(eta),
    )


#: One queue's claims, each with its ready score, and that queue's next due time.
_Batch = tuple[list[tuple[float, Claim]], float | None]


def _parse_claims(queue: str, reply: list[Any], looked: bool) -> _Batch:
    due, flat = reply
    claims = []
    for i in range(0, len(flat), 8):
        msg_id, body, meta, attempt, token, score, deliveries, record = flat[i:i + 8]
        claim = Claim(_envelope(queue, msg_id, body, meta), int(attempt), token.decode(),
                      int(deliveries), record.decode() if looked else None)
        claims.append((float(score), claim))
    return claims, _time(due)


def _earliest(times: Iterable[float | None]) -> float | None:
    return min((t for t in times if t is not None), default=None)


def _pick(queues: Sequence[str], peeks: list[list[Any]], limit: int) -> dict[str, int]:
    """How many to claim from each queue: the best ``limit`` by priority, then queue order."""
    ranked = sorted(
        (int(float(score)) // lua.BAND, index, float(score))
        for index, (_, flat) in enumerate(peeks) for score in flat[1::2]
    )
    return dict(collections.Counter(queues[index] for _, index, _ in ranked[:limit]))


def _publish_fields(env: Envelope) -> tuple[Any, ...]:
    """A message's fields as the publish scripts take them."""
    if not 0 <= env.priority <= 9:
        raise ValueError(f"priority must be 0..9, got {env.priority} (message {env.id})")
    eta = "" if env.eta is None else repr(float(env.eta))
    return env.id, env.body, env.priority, env.content_type, eta


def _encode_result(record: StoredResult) -> bytes:
    if "|" in record.state:
        raise ValueError(f"result state {record.state!r} must not contain '|'")
    header = f"{int(record.final)}|{record.attempt}|{record.state}|".encode()
    return header + record.data


def _decode_result(raw: bytes | None) -> StoredResult | None:
    if raw is None:
        return None
    final, attempt, state, data = raw.split(b"|", 3)
    return StoredResult(data=data, state=state.decode(), attempt=int(attempt), final=final == b"1")


def _ttl_ms(ttl: float) -> int:
    return max(1, math.ceil(ttl * 1000))


def _grouped(claims: Sequence[Claim]) -> dict[str, list[Claim]]:
    groups: dict[str, list[Claim]] = {}
    for claim in claims:
        groups.setdefault(claim.envelope.queue, []).append(claim)
    return groups


def _pairs(claims: Sequence[Claim]) -> list[str]:
    return [v for c in claims for v in (c.envelope.id, c.token)]


def _ack_fields(items: Sequence[tuple[Claim, ResultWrite | None]], group: list[int],
                storing: bool) -> list[Any]:
    """The ACK script's fields for the messages at ``group`` of ``items`` (see its ARGV)."""
    fields: list[Any] = []
    for i in group:
        claim, result = items[i]
        fields += (claim.envelope.id, claim.token)
        if storing:
            fields += (b"", 0) if result is None else (_encode_result(result.record),
                                                       _ttl_ms(result.ttl))
    return fields


def _split(replies: list[Any], ops: Sequence[_Op[Any]]) -> list[list[Any]]:
    """``replies`` of the ops joined by :func:`_joined`, cut back into each op's part."""
    parts, start = [], 0
    for op in ops:
        parts.append(replies[start:start + len(op.calls)])
        start += len(op.calls)
    return parts


def _joined(ops: Sequence[_Op[Any]], parse: Callable[[list[Any]], T]) -> _Op[T]:
    """The calls of ``ops`` in one round trip, in order, read by ``parse``."""
    calls: list[_Call] = []
    stages: list[int] = []
    for op in ops:
        stages.extend(len(calls) + s for s in op.stages)
        calls.extend(op.calls)
    return _Op(calls, parse, tuple(stages), any(op.durable for op in ops))


class _Plans:
    """Builds every operation as an :class:`_Op`: the key layout and protocol in one place."""

    def __init__(self, prefix: str, cluster: bool = False) -> None:
        self.prefix = prefix
        #: On a cluster no script touches a result record together with a queue (their keys
        #: are in different slots): records are written by calls of their own.
        self.cluster = cluster
        self.registered: set[str] = set()  # queues this process has put in the registry
        self._key_cache: dict[str, dict[str, bytes]] = {}

    def _keys(self, queue: str) -> dict[str, bytes]:
        """The queue's keys, encoded once: packing arguments is most of a call's client cost."""
        keys = self._key_cache.get(queue)
        if keys is None:
            keys = {k: v.encode() for k, v in lua.queue_keys(self.prefix, queue).items()}
            if len(self._key_cache) < 10000:
                self._key_cache[queue] = keys
        return keys

    def _queue(self, script: lua.Script, queue: str, args: Iterable[Any]) -> _Call:
        keys = self._keys(queue)
        return _script(script, [keys[k] for k in script.keys], args)

    def wake(self, queue: str) -> str:
        return lua.wake_channel(self.prefix, queue)

    def publish(self, envelopes: Sequence[Envelope]) -> _Op[None]:
        return self.publish_tracked(envelopes, (), 0.0)

    def _registering(self, calls: list[_Call], queues: list[str]) -> _Op[None]:
        # The registry is written once per queue and process: it only grows, and a publish that
        # is a single script call skips the pipeline.
        new = [q for q in queues if q not in self.registered]
        if new:
            calls.append(_Call(("SADD", lua.registry_key(self.prefix), *new)))
        return _Op(calls, lambda _: self.registered.update(new), durable=True)

    def claim(self, wanted: dict[str, int], lease: float,
              record_started: bool = False) -> _Op[list[_Batch]]:
        """Claim ``wanted[queue]`` messages from each queue, each call with a fresh token; with
        ``record_started``, record the claimed tasks' STARTED states in the same scripts."""
        queues = list(wanted)
        record_started = record_started and not self.cluster
        results = lua.result_key(self.prefix, "") if record_started else ""
        calls = [
            self._queue(lua.CLAIM, q, [min(n, lua.MAX_CLAIM), repr(lease),
                                       secrets.token_hex(8) + ".", results])
            for q, n in wanted.items()
        ]

        def parse(replies: list[Any]) -> list[_Batch]:
            return [_parse_claims(q, r, record_started)
                    for q, r in zip(queues, replies, strict=True)]

        return _Op(calls, parse)

    def settles(self, settles: Sequence[Settle]) -> _Op[list[BaseException | None]]:
        """Many settles in one round trip; how each went (None, or its LeaseLost). The acks go
        together, one script call per queue with their results (see :meth:`ack`); each other
        settle is a call of its own."""
        acking = [i for i, s in enumerate(settles) if s.kind == "ack"]
        others = [i for i, s in enumerate(settles) if s.kind != "ack"]
        acks = self.ack([(settles[i].claim, settles[i].result) for i in acking])
        ops: list[_Op[Any]] = [acks, *(self._settle_op(settles[i]) for i in others)]

        def parse(replies: list[Any]) -> list[BaseException | None]:
            out: list[BaseException | None] = [None] * len(settles)
            parts = _split(replies, ops)
            for i, status in zip(acking, acks.parse(parts[0]), strict=True):
                out[i] = _lost(settles[i].claim) if status < 0 else None
            for i, op, part in zip(others, ops[1:], parts[1:], strict=True):
                try:
                    op.parse(part)
                except LeaseLost as exc:
                    out[i] = exc
            return out

        return _joined(ops, parse)

    def _settle_op(self, settle: Settle) -> _Op[None]:
        """A settle other than an ack (those go together, see :meth:`settles`)."""
        claim = settle.claim
        if settle.kind == "retry":
            op = self.retry(claim, settle.delay, settle.body, settle.keep_count)
        elif settle.kind == "dead":
            op = self.dead(claim, settle.reason)
        else:
            op = self.release(claim)
        return op if settle.result is None else self.storing(settle.result, op)

    def peek(self, queues: Sequence[str], limit: int) -> _Op[list[list[Any]]]:
        return _Op([self._queue(lua.PEEK, q, [limit]) for q in queues], lambda replies: replies)

    def ack(self, items: Sequence[tuple[Claim, ResultWrite | None]]) -> _Op[list[int]]:
        """Fenced acks, each after storing its result (if any) under the fencing rule; the
        statuses come back in the order of ``items``. On one server a message's result is
        stored by its ack's script, in the same step; on a cluster (the result key is in
        another slot) every result is stored first, by calls of its own."""
        if not self.cluster:
            return self._acks(items, storing=any(r is not None for _, r in items))
        stores = [self._write(r) for _, r in items if r is not None]
        acks = self._acks(items, storing=False)
        if not stores:
            return acks
        return _then(_Op(stores, lambda _: None, durable=True), acks)

    def _acks(self, items: Sequence[tuple[Claim, ResultWrite | None]],
              storing: bool) -> _Op[list[int]]:
        groups: dict[str, list[int]] = {}
        for i, (claim, _) in enumerate(items):
            groups.setdefault(claim.envelope.queue, []).append(i)
        head = ([lua.result_key(self.prefix, ""), lua.result_channel(self.prefix, "")]
                if storing else ["", ""])
        calls = [self._queue(lua.ACK, q, [*head, *_ack_fields(items, group, storing)])
                 for q, group in groups.items()]

        def parse(replies: list[Any]) -> list[int]:
            out = [0] * len(items)
            for group, reply in zip(groups.values(), replies, strict=True):
                for i, status in zip(group, reply, strict=True):
                    out[i] = int(status)
            return out

        return _Op(calls, parse, durable=storing)

    def _settle(self, script: lua.Script, claim: Claim, *args: Any) -> _Op[None]:
        call = self._queue(script, claim.envelope.queue, [claim.envelope.id, claim.token, *args])
        return _Op([call], lambda replies: _check_status(claim, int(replies[0])))

    def retry(self, claim: Claim, delay: float, body: bytes | None,
              keep_count: bool = False) -> _Op[None]:
        extra = [] if body is None else [body]
        return self._settle(lua.RETRY, claim, repr(float(delay)),
                            self.wake(claim.envelope.queue), "1" if keep_count else "0", *extra)

    def dead(self, claim: Claim, reason: str) -> _Op[None]:
        return self._settle(lua.DEAD, claim, reason)

    def release(self, claim: Claim) -> _Op[None]:
        return self._settle(lua.RELEASE, claim, self.wake(claim.envelope.queue))

    def renew(self, claims: Sequence[Claim], lease: float) -> _Op[set[str]]:
        calls = [self._queue(lua.RENEW, q, [repr(lease), *_pairs(group)])
                 for q, group in _grouped(claims).items()]
        return _Op(calls, lambda replies: {t.decode() for reply in replies for t in reply})

    def stats(self, queue: str) -> _Op[QueueStats]:
        return _Op([self._queue(lua.STATS, queue, [])],
                   lambda replies: QueueStats(queue, *(int(n) for n in replies[0])))

    def registry(self) -> _Op[list[str]]:
        return _Op([_Call(("SMEMBERS", lua.registry_key(self.prefix)))],
                   lambda replies: sorted(q.decode() for q in replies[0]))

    def holding(self, queues: Sequence[str]) -> _Op[list[str]]:
        """The queues among ``queues`` that hold any message (ready, delayed, leased or dead)."""
        calls = [_Call(("EXISTS", self._keys(q)["body"])) for q in queues]
        return _Op(calls, lambda replies: [q for q, n in zip(queues, replies, strict=True) if n])

    def count(self, script: lua.Script, queues: Sequence[str], *args: Any) -> _Op[int]:
        calls = [self._queue(script, q, args) for q in queues]
        return _Op(calls, lambda replies: sum(int(n) for n in replies))

    def dead_letters(self, queues: Sequence[str], limit: int) -> _Op[list[DeadLetter]]:
        def parse(replies: list[Any]) -> list[DeadLetter]:
            found = [
                DeadLetter(_envelope(q, flat[i], flat[i + 2], flat[i + 3]),
                           (flat[i + 4] or b"").decode(), float(flat[i + 1]))
                for q, flat in zip(queues, replies, strict=True) for i in range(0, len(flat), 5)
            ]
            return sorted(found, key=lambda d: d.failed_at)[:limit]

        return _Op([self._queue(lua.DEAD_LETTERS, q, [limit]) for q in queues], parse)

    def replay(self, queues: Sequence[str], ids: Sequence[str]) -> _Op[int]:
        calls = [self._queue(lua.REPLAY, q, [self.wake(q), *ids]) for q in queues]
        return _Op(calls, lambda replies: sum(int(n) for n in replies))

    def store(self, task_id: str, record: StoredResult, ttl: float) -> _Op[bool]:
        call = _script(lua.STORE_RESULT, [lua.result_key(self.prefix, task_id)], [
            _encode_result(record), _ttl_ms(ttl), lua.result_channel(self.prefix, task_id),
        ])
        return _Op([call], lambda replies: bool(replies[0]), durable=True)

    def store_many(self, records: Sequence[tuple[str, StoredResult]], ttl: float) -> _Op[None]:
        """One fenced script call per record (each result key has its own slot), pipelined."""
        return _Op([self.store(t, r, ttl).calls[0] for t, r in records], lambda _: None,
                   durable=True)

    def _write(self, result: ResultWrite) -> _Call:
        return self.store(result.task_id, result.record, result.ttl).calls[0]

    def storing(self, result: ResultWrite, settle: _Op[T]) -> _Op[T]:
        """Store ``result``, then ``settle``, in one round trip. Not one atomic step: a script
        may touch one hash slot only, and the result key is not in the queue's slot. The order
        matches the store-then-settle contract; the result is fenced by its attempt."""
        return _then(_Op([self._write(result)], lambda _: None, durable=True), settle)

    def publish_tracked(self, envelopes: Sequence[Envelope],
                        records: Sequence[tuple[str, StoredResult]], ttl: float) -> _Op[None]:
        """Messages and their records together: one script call per queue (and chunk), so a
        worker that takes a message at once finds its record there. On a cluster the records
        are stored first (fenced, one call each), then the messages published."""
        if self.cluster and records:
            return _then(self.store_many(records, ttl), self.publish_tracked(envelopes, (), ttl))
        encoded = {task_id: _encode_result(record) for task_id, record in records}
        by_queue: dict[str, list[Any]] = {}
        for env in envelopes:
            by_queue.setdefault(env.queue, []).append(
                (*_publish_fields(env), encoded.get(env.id, b"")))
        head = [lua.result_key(self.prefix, "") if records else "", _ttl_ms(ttl)]
        calls = [
            self._queue(lua.PUBLISH, queue,
                        [self.wake(queue), *head, *(v for m in chunk for v in m)])
            for queue, rows in by_queue.items()
            for chunk in (rows[i:i + _PUBLISH_CHUNK] for i in range(0, len(rows), _PUBLISH_CHUNK))
        ]
        return self._registering(calls, list(by_queue))

    def get_many(self, task_ids: Sequence[str]) -> _Op[list[StoredResult | None]]:
        if not task_ids:
            return _Op([], lambda _: [])
        keys = [lua.result_key(self.prefix, t) for t in task_ids]
        if self.cluster:  # one GET per key: MGET may not span slots
            return _Op([_Call(("GET", k)) for k in keys],
                       lambda replies: [_decode_result(raw) for raw in replies])
        return _Op([_Call(("MGET", *keys))],
                   lambda replies: [_decode_result(raw) for raw in replies[0]])

    def forget(self, task_id: str) -> _Op[None]:
        return _Op([_Call(("DEL", lua.result_key(self.prefix, task_id)))], lambda _: None)

    def count_member(self, key: str, member: str, ttl: float) -> _Op[int]:
        call = _script(lua.COUNT_MEMBER, [lua.member_key(self.prefix, key)],
                       [member, _ttl_ms(ttl)])
        return _Op([call], lambda replies: int(replies[0]))


# -- wires: plans sent on connections of redis-py's pools, without its per-command machinery ---

def _optional(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError:  # pragma: no cover - redis-py works without hiredis, only slower
        return None


hiredis = _optional("hiredis")


def _pack(conn: Any, commands: list[tuple[Any, ...]]) -> Any:
    """RESP for ``commands``: hiredis packs in C (redis-py's async client packs in Python)."""
    if hiredis is None:
        return conn.pack_commands(commands)
    return [b"".join([hiredis.pack_command(c) for c in commands])]


class _SyncWire:
    """Sends a list of commands in one write and reads their replies, on a connection of the
    sync client's pool kept for this store's own use.

    redis-py's per-command path (pool checkout, retry and metrics wrappers) costs about as much
    as a local round trip itself; here a call is a write and the reads. An error reply is
    returned in its place (the connection stays usable); any other failure drops the connection.
    Idle connections are checked for a server-side close before reuse, so a server restart
    costs no spurious error. Thread-safe: each call holds its own connection.
    """

    def __init__(self, client: _Client) -> None:
        self._pool = client.connection_pool
        self._idle: list[Any] = []

    def run(self, calls: Sequence[_Call], stages: Sequence[int],
            wait: cluster.Durability | None) -> list[Any]:
        """An operation's calls in one round trip (the pipeline keeps their order, so
        ``stages`` need nothing more), then EVAL for any the server answered NOSCRIPT;
        ``wait``: WAIT after them, on the same connection."""
        tail = [wait.command()] if wait is not None else []
        replies = self.call([c.args for c in calls] + tail)
        if wait is not None:
            wait.check(replies.pop())
        missing = _missing_scripts(replies)
        if missing:
            evals = self.call([calls[i].as_eval() for i in missing] + tail)
            if wait is not None:
                wait.check(evals.pop())
            for i, reply in zip(missing, evals, strict=True):
                replies[i] = reply
        return replies

    def call(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        if not commands:
            return []
        return self.receive(self.send(commands), len(commands))

    def send(self, commands: list[tuple[Any, ...]]) -> Any:
        """Write ``commands`` on a connection, which :meth:`receive` reads and gives back."""
        conn = self._take()
        try:
            conn.send_packed_command(_pack(conn, commands), check_health=False)
        except BaseException:
            conn.disconnect()
            raise
        return conn

    def receive(self, conn: Any, count: int) -> list[Any]:
        try:
            replies = [self._reply(conn) for _ in range(count)]
        except BaseException:
            conn.disconnect()
            raise
        self._idle.append(conn)
        return replies

    @staticmethod
    def _reply(conn: Any) -> Any:
        try:
            return conn.read_response()
        except ResponseError as exc:
            return exc

    def _take(self) -> Any:
        while self._idle:
            conn = self._idle.pop()
            try:
                if not conn.can_read():  # anything readable on an idle connection is an EOF
                    return conn
            except (redis.ConnectionError, OSError):
                pass
            conn.disconnect()
        conn = self._pool.make_connection()
        conn.connect()
        return conn

    def close(self) -> None:
        while self._idle:
            self._idle.pop().disconnect()


_UNKNOWN = object()
#: Replies and failures that mean "not now": the server is down, read-only (a demoted
#: primary), or its cluster is between masters. Consumers back off and look again.
_UNAVAILABLE = (redis.ConnectionError, redis.TimeoutError, ReadOnlyError, ClusterDownError,
                TryAgainError, AskError)


def _readable(fd: int) -> bool:
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    return bool(select.select([fd], [], [], 0)[0])


def _closed_by_server(conn: Any) -> bool:
    """Whether an idle async connection is unusable: closed, or readable (an EOF: an idle
    connection has nothing else to read). The socket is asked directly because the event loop
    may not have run since the server went away. redis-py keeps the stream pair in ``_reader``
    and ``_writer`` (5.x to 7.x); without them the check is skipped."""
    reader: Any = getattr(conn, "_reader", _UNKNOWN)
    writer: Any = getattr(conn, "_writer", _UNKNOWN)
    if reader is None or writer is None:
        return True
    if reader is _UNKNOWN or writer is _UNKNOWN:
        return False
    if reader.at_eof():
        return True
    sock = writer.get_extra_info("socket")
    return sock is not None and _readable(sock.fileno())


class _AsyncWire:
    """The async twin of :class:`_SyncWire`, for one event loop. It also spares the timer that
    redis-py starts for every read when ``socket_timeout`` is set: the async client runs without
    one by default and relies on TCP keepalive and TCP_USER_TIMEOUT to notice a dead peer."""

    def __init__(self, client: _Client) -> None:
        self._pool = client.connection_pool
        self._idle: list[Any] = []

    async def run(self, calls: Sequence[_Call], stages: Sequence[int],
                  wait: cluster.Durability | None) -> list[Any]:
        """As :meth:`_SyncWire.run`."""
        tail = [wait.command()] if wait is not None else []
        replies = await self.call([c.args for c in calls] + tail)
        if wait is not None:
            wait.check(replies.pop())
        missing = _missing_scripts(replies)
        if missing:
            evals = await self.call([calls[i].as_eval() for i in missing] + tail)
            if wait is not None:
                wait.check(evals.pop())
            for i, reply in zip(missing, evals, strict=True):
                replies[i] = reply
        return replies

    async def call(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        if not commands:
            return []
        conn = await self._take()
        try:
            await conn.send_packed_command(_pack(conn, commands), check_health=False)
            replies = [await self._reply(conn) for _ in commands]
        except BaseException:
            await conn.disconnect(nowait=True)
            raise
        self._idle.append(conn)
        return replies

    @staticmethod
    async def _reply(conn: Any) -> Any:
        try:
            return await conn.read_response()
        except ResponseError as exc:
            return exc

    async def _take(self) -> Any:
        while self._idle:
            conn = self._idle.pop()
            if not _closed_by_server(conn):
                return conn
            await conn.disconnect(nowait=True)
        conn = self._pool.make_connection()
        await conn.connect()
        return conn

    async def close(self) -> None:
        while self._idle:
            with contextlib.suppress(RedisError, OSError):
                await self._idle.pop().disconnect()


# -- the store --------------------------------------------------------------------------------

class _Outage:
    """Consumer-side bookkeeping of a Redis outage: backoff, and logs that do not flood."""

    def __init__(self, url: str, clock: Clock) -> None:
        self.url = url
        self.clock = clock
        self.failures = 0
        self._last_log = 0.0

    def failed(self, exc: BaseException) -> float:
        """Record a failure; returns how long to wait before trying again."""
        self.failures += 1
        now = self.clock.monotonic()
        if self.failures == 1 or now - self._last_log > 30:
            self._last_log = now
            log.warning("%s; consumers keep retrying", exc)
        return min(_BACKOFF_CAP, _BACKOFF_BASE * 2.0 ** (self.failures - 1))

    def recovered(self) -> None:
        if self.failures:
            log.info("%s is reachable again after %d failed attempts", self.url, self.failures)
            self.failures = 0


class RedisStore(PullBroker, QueueAdmin, DeadLetterAdmin, ResultBackend, EventLog,
                 Coordination, ControlLog, Revocations, RateLimiter, ConcurrencySlots,
                 DelayedWake):
    """Broker and result backend on Redis. Thread-safe for the sync methods; the async methods
    use one client per event loop (redis.asyncio objects belong to the loop that made them)."""

    def __init__(self, target: _Target, clock: Clock = SYSTEM) -> None:
        self.url = target.url
        self.clock = clock
        self.prefix = target.prefix
        self._target = target
        self._plans = _Plans(target.prefix, cluster=target.cluster_link is not None)
        self._client: _Client = target.make_sync()
        self._wire: _SyncWire | cluster.SyncClusterWire = (
            _SyncWire(self._client) if target.cluster_link is None
            else cluster.SyncClusterWire(self._client, _SyncWire))
        self._sides: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _AsyncSide] = (
            weakref.WeakKeyDictionary())
        self._sides_lock = threading.Lock()
        self._outage = _Outage(self.url, clock)

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r}, prefix={self.prefix!r})"

    # -- I/O: the only place sync and async differ --------------------------------------------
    def _error(self, exc: RedisError) -> BrokerError:
        text = str(exc)
        if self._target.secret:
            text = text.replace(self._target.secret, "***")
        if isinstance(exc, cluster.NotReplicated):
            return NotReplicated(f"{self.url}: {text}; the write may not survive a failover")
        if isinstance(exc, _UNAVAILABLE):
            return BrokerUnavailable(f"cannot reach {self.url}: {text}")
        return BrokerError(f"{self.url}: {text}")

    def _run(self, op: _Op[T]) -> T:
        wait = self._target.wait if op.durable else None
        try:
            return op.parse(_raise_errors(self._wire.run(op.calls, op.stages, wait)))
        except RedisError as exc:
            raise self._error(exc) from exc

    async def _arun(self, op: _Op[T]) -> T:
        wait = self._target.wait if op.durable else None
        try:
            return op.parse(_raise_errors(await self._side().wire.run(op.calls, op.stages, wait)))
        except RedisError as exc:
            raise self._error(exc) from exc

    def _side(self) -> _AsyncSide:
        loop = asyncio.get_running_loop()
        side = self._sides.get(loop)
        if side is None:
            with self._sides_lock:
                # A side refers to its loop, so it would keep a finished loop alive in the dict.
                for finished in [other for other in self._sides if other.is_closed()]:
                    del self._sides[finished]
                side = self._sides.get(loop)
                if side is None:
                    side = self._sides[loop] = _AsyncSide(self)
        return side

    # -- setup ---------------------------------------------------------------------------------
    def check_eviction_policy(self) -> None:
        """Refuse (ConfigurationError) a server that may evict queue keys; see the module doc."""
        servers = ([self._client] if self._target.cluster_link is None
                   else cluster.primaries(self._client))
        for server in servers:
            try:
                found = server.config_get("maxmemory-policy")
            except ResponseError as exc:
                log.warning("cannot read maxmemory-policy of %s (%s); make sure it is "
                            "noeviction or volatile-*, or queued messages may be evicted",
                            self.url, exc)
                return
            except RedisError as exc:
                raise self._error(exc) from exc
            self._check_policy(found)

    def _check_policy(self, found: dict[Any, Any]) -> None:
        policy = {_text(k): _text(v) for k, v in found.items()}.get("maxmemory-policy", "")
        if policy not in SAFE_EVICTION_POLICIES:
            raise ConfigurationError(
                f"{self.url} has maxmemory-policy {policy!r}, which may evict queued messages;"
                f" set it to noeviction (or a volatile-* policy)")

    # -- producer ------------------------------------------------------------------------------
    def publish(self, envelopes: Sequence[Envelope]) -> None:
        """All envelopes in one round trip: one script per queue (and chunk) in a pipeline.
        An id already in its queue is left as it is."""
        self._run(self._plans.publish(envelopes))

    async def apublish(self, envelopes: Sequence[Envelope]) -> None:
        await self._arun(self._plans.publish(envelopes))

    def publish_tracked(self, envelopes: Sequence[Envelope],
                        records: Sequence[tuple[str, StoredResult]], ttl: float) -> None:
        """Records (fenced) and messages in one round trip, the records first."""
        self._run(self._plans.publish_tracked(envelopes, records, ttl))

    async def apublish_tracked(self, envelopes: Sequence[Envelope],
                               records: Sequence[tuple[str, StoredResult]], ttl: float) -> None:
        await self._arun(self._plans.publish_tracked(envelopes, records, ttl))

    # -- consumer primitives -------------------------------------------------------------------
    async def _claim(
        self, queues: Sequence[str], limit: int, lease: float
    ) -> tuple[list[Claim], float | None]:
        batch = await self._claim_batch(queues, limit, lease)
        return batch.claims, batch.next_at

    async def _claim_batch(self, queues: Sequence[str], limit: int, lease: float, *,
                           settles: Sequence[Settle] = (),
                           record_started: bool = False) -> ClaimBatch:
        """Settles and the claim (with STARTED records) in one round trip: one script call per
        settle and one per queue claimed from, in a pipeline (two round trips for several
        queues: peek, then claim). While Redis is unreachable this returns no claims and a
        retry time after a capped exponential backoff, so the consumer loop survives; the
        settles then fail with BrokerUnavailable."""
        side = self._side()
        started = self.clock.monotonic()
        for queue in queues:
            side.claimed_at[queue] = started
        try:
            batch = await self._claim_from(list(queues), limit, lease, settles, record_started)
        except BrokerUnavailable as exc:
            retry_at = self.clock.time() + self._outage.failed(exc)
            return ClaimBatch([], retry_at, [exc] * len(settles))
        self._outage.recovered()
        return batch

    async def _claim_from(self, queues: list[str], limit: int, lease: float,
                          settles: Sequence[Settle], record_started: bool) -> ClaimBatch:
        settling = self._plans.settles(settles)
        if not limit:
            return ClaimBatch([], None, await self._arun(settling) if settles else [])
        if len(queues) == 1:
            claim = self._plans.claim({queues[0]: limit}, lease, record_started)
            settled, ((ranked, due),) = await self._arun(_both(settling, claim))
            return ClaimBatch([c for _, c in ranked], due, settled)
        settled, peeks = await self._arun(_both(settling, self._plans.peek(queues, limit)))
        due = _earliest(_time(p[0]) for p in peeks)
        wanted = _pick(queues, peeks, limit)
        if not wanted:
            return ClaimBatch([], due, settled)
        batches = await self._arun(self._plans.claim(wanted, lease, record_started))
        order = {q: i for i, q in enumerate(queues)}
        merged = sorted(
            ((int(score) // lua.BAND, order[c.envelope.queue], score), c)
            for claims, _ in batches for score, c in claims
        )
        return ClaimBatch([c for _, c in merged], _earliest([due, *(d for _, d in batches)]),
                          settled)

    async def _wait(self, queues: Sequence[str], timeout: float) -> None:
        """Sleep until a queue's channel announces a message or ``timeout`` passes.

        An announcement heard after the last claim started (it may have gone unseen by that
        claim) and a subscription that is new (a message may have come before it) end the wait
        at once; both cost at most one empty claim.
        """
        side = self._side()
        channels = [self._plans.wake(q) for q in queues]
        try:
            if await side.hub.keep(channels):
                return
        except BrokerUnavailable:
            await asyncio.sleep(timeout)
            return
        since = min(side.claimed_at.get(q, 0.0) for q in queues)
        if side.hub.heard_since(channels, since):
            return
        await side.hub.wait(channels, timeout)

    async def _settle_ack(self, claim: Claim) -> None:
        """Fenced ack. Acks issued while another ack is in flight share the next round trip."""
        _check_status(claim, await self._side().acks.ack(claim, None))

    async def _settle_ack_storing(self, claim: Claim, result: ResultWrite) -> None:
        """Store the result, then ack, in one round trip (shared with concurrent acks)."""
        _check_status(claim, await self._side().acks.ack(claim, result))

    async def _settle_retry_storing(self, claim: Claim, delay: float, body: bytes | None,
                                    result: ResultWrite, keep_count: bool = False) -> None:
        retry = self._plans.retry(claim, delay, body, keep_count)
        await self._arun(self._plans.storing(result, retry))

    async def _settle_dead_storing(self, claim: Claim, reason: str,
                                   result: ResultWrite) -> None:
        await self._arun(self._plans.storing(result, self._plans.dead(claim, reason)))

    async def _settle_retry(self, claim: Claim, delay: float, body: bytes | None,
                            keep_count: bool = False) -> None:
        await self._arun(self._plans.retry(claim, delay, body, keep_count))

    async def _settle_dead(self, claim: Claim, reason: str) -> None:
        await self._arun(self._plans.dead(claim, reason))

    async def _settle_release(self, claim: Claim) -> None:
        """Fenced release. If Redis is unreachable the message stays leased and comes back when
        the lease expires, so the failure is logged rather than raised (e.g. during close)."""
        try:
            await self._arun(self._plans.release(claim))
        except BrokerUnavailable as exc:
            log.warning("could not release %s (%s); it returns when its lease expires",
                        claim.envelope.id, exc)

    async def _renew(self, claims: Sequence[Claim], lease: float) -> set[str]:
        """Extend leases; returns the tokens that lost theirs. While Redis is unreachable nothing
        is known lost: the failure is logged and the consumer tries again at its next renewal
        (an exception here would end the consumer's renewal task for good)."""
        try:
            return await self._arun(self._plans.renew(claims, lease))
        except BrokerUnavailable as exc:
            return _unrenewed(claims, exc)

    def _renew_blocking(self, claims: Sequence[Claim], lease: float) -> set[str]:
        try:
            return self._run(self._plans.renew(claims, lease))
        except BrokerUnavailable as exc:
            return _unrenewed(claims, exc)

    # -- admin ---------------------------------------------------------------------------------
    def stats(self, queue: str) -> QueueStats:
        """Counts by the server's clock: expired leases and due ETAs count as ready."""
        return self._run(self._plans.stats(queue))

    def queues(self) -> list[str]:
        known = self._run(self._plans.registry())
        return self._run(self._plans.holding(known))

    def purge(self, queue: str) -> int:
        return self._run(self._plans.count(lua.PURGE, [queue]))

    def _queues_or(self, queue: str | None) -> list[str]:
        return [queue] if queue is not None else self._run(self._plans.registry())

    def dead_letters(self, queue: str | None = None, limit: int = 100) -> list[DeadLetter]:
        if limit <= 0:
            return []
        return self._run(self._plans.dead_letters(self._queues_or(queue), limit))

    def replay_dead(self, ids: Sequence[str] | None = None, queue: str | None = None) -> int:
        if ids is not None and not ids:
            return 0
        return self._run(self._plans.replay(self._queues_or(queue), list(ids or [])))

    def purge_dead(self, queue: str | None = None) -> int:
        return self._run(self._plans.count(lua.PURGE_DEAD, self._queues_or(queue)))

    # -- results -------------------------------------------------------------------------------
    def store(self, task_id: str, record: StoredResult, ttl: float) -> bool:
        """Write under the fencing rule in one script; a final record is announced."""
        return self._run(self._plans.store(task_id, record, ttl))

    async def astore(self, task_id: str, record: StoredResult, ttl: float) -> bool:
        return await self._arun(self._plans.store(task_id, record, ttl))

    def store_many(self, records: Sequence[tuple[str, StoredResult]], ttl: float) -> None:
        """Every record under the fencing rule, in one round trip."""
        self._run(self._plans.store_many(records, ttl))

    async def astore_many(self, records: Sequence[tuple[str, StoredResult]], ttl: float) -> None:
        await self._arun(self._plans.store_many(records, ttl))

    def get_many(self, task_ids: Sequence[str]) -> list[StoredResult | None]:
        """One MGET."""
        return self._run(self._plans.get_many(task_ids))

    async def aget_many(self, task_ids: Sequence[str]) -> list[StoredResult | None]:
        return await self._arun(self._plans.get_many(task_ids))

    def wait(self, task_id: str, timeout: float | None) -> StoredResult | None:
        """Subscribe to the task's channel first, then read, then sleep on the subscription."""
        deadline = Deadline(timeout)
        pubsub = self._client.pubsub()
        try:
            pubsub.subscribe(lua.result_channel(self.prefix, task_id))
            if pubsub.get_message(timeout=_CONFIRM_TIMEOUT) is None:
                raise redis.TimeoutError("no confirmation of SUBSCRIBE")
            while True:
                record = self.get(task_id)
                if (record is not None and record.final) or deadline.expired:
                    return record
                pubsub.get_message(timeout=deadline.pause(_READ_SLICE))
        except RedisError as exc:
            raise self._error(exc) from exc
        finally:
            pubsub.close()

    async def await_final(self, task_id: str, timeout: float | None) -> StoredResult | None:
        """As :meth:`wait`, on the event loop's shared pub/sub connection."""
        deadline = Deadline(timeout)
        channel = lua.result_channel(self.prefix, task_id)
        hub = self._side().hub
        async with hub.holding(channel):
            while True:
                record = await self.aget(task_id)
                if (record is not None and record.final) or deadline.expired:
                    return record
                await hub.wait([channel], deadline.pause(_READ_SLICE))

    def forget(self, task_id: str) -> None:
        self._run(self._plans.forget(task_id))

    async def count_member(self, key: str, member: str, ttl: float) -> int:
        """SADD, PEXPIRE and SCARD in one script."""
        return await self._arun(self._plans.count_member(key, member, ttl))

    # -- events ----------------------------------------------------------------------------
    def _append_op(self, events: Sequence[Event], retention: Retention) -> _Op[None]:
        commands = events_redis.append_commands(self.prefix, events, retention,
                                                self.clock.time())
        return _Op([_Call(c) for c in commands], lambda _: None)

    def append_events_sync(self, events: Sequence[Event], retention: Retention) -> None:
        if events:
            self._run(self._append_op(events, retention))

    async def append_events(self, events: Sequence[Event], retention: Retention) -> None:
        if events:
            await self._arun(self._append_op(events, retention))

    async def read_events(self, after: str | None, limit: int, wait: float) -> list[Event]:
        """What is kept after the cursor (XRANGE from its entry), else XREAD BLOCK: the server
        wakes the reader when an entry arrives."""
        stream = events_redis.events_key(self.prefix)
        client = self._side().client
        try:
            if after is not None:
                entry = after.partition(":")[0]
                kept = events_redis.parse_entries(await client.xrange(
                    stream, min=entry if entry != "0" else "-", count=limit))
                found = after_cursor(kept, after)
                if found:
                    return found[:limit]
                last = kept[-1].id.partition(":")[0] if kept else entry
            reply = await client.xread({stream: last if after is not None else "$"},
                                       count=limit, block=max(1, int(wait * 1000)))
        except RedisError as exc:
            raise self._error(exc) from exc
        return events_redis.parse_read(reply)[:limit]

    async def last_event_id(self) -> str | None:
        stream = events_redis.events_key(self.prefix)
        try:
            entries = await self._side().client.xrevrange(stream, count=1)
        except RedisError as exc:
            raise self._error(exc) from exc
        return events_redis.parse_entries(entries)[0].id.partition(":")[0] if entries else None

    async def heartbeats(self) -> list[Event]:
        try:
            raw = await self._side().client.hgetall(events_redis.workers_key(self.prefix))
        except RedisError as exc:
            raise self._error(exc) from exc
        return [Event.decode(data, "") for _, data in sorted(raw.items())]

    # -- coordination ------------------------------------------------------------------------
    def _kv_key(self, key: str) -> str:
        return kv.value_key(self.prefix, key)

    def _put_op(self, key: str, value: bytes, ttl: float) -> _Op[bytes | None]:
        call = _script(kv.PUT_IF_ABSENT, [self._kv_key(key)], [value, kv.ttl_ms(ttl)])
        return _Op([call], lambda replies: replies[0])

    def _cas_op(self, key: str, expected: bytes | None, value: bytes | None,
                ttl: float) -> _Op[bool]:
        call = _script(kv.COMPARE_AND_SET, [self._kv_key(key)],
                       kv.cas_args(expected, value, ttl))
        return _Op([call], lambda replies: bool(replies[0]))

    def _get_op(self, key: str) -> _Op[bytes | None]:
        return _Op([_Call(("GET", self._kv_key(key)))], lambda replies: replies[0])

    def _ttl_op(self, key: str) -> _Op[float | None]:
        return _Op([_Call(("PTTL", self._kv_key(key)))],
                   lambda replies: kv.seconds_left(replies[0]))

    def _set_op(self, key: str, value: bytes, ttl: float) -> _Op[None]:
        return _Op([_Call(("SET", self._kv_key(key), value, "PX", kv.ttl_ms(ttl)))],
                   lambda _: None)

    def _delete_op(self, key: str) -> _Op[None]:
        return _Op([_Call(("DEL", self._kv_key(key)))], lambda _: None)

    def put_if_absent(self, key: str, value: bytes, ttl: float) -> bytes | None:
        return self._run(self._put_op(key, value, ttl))

    async def aput_if_absent(self, key: str, value: bytes, ttl: float) -> bytes | None:
        return await self._arun(self._put_op(key, value, ttl))

    def get_value(self, key: str) -> bytes | None:
        return self._run(self._get_op(key))

    async def aget_value(self, key: str) -> bytes | None:
        return await self._arun(self._get_op(key))

    def value_ttl(self, key: str) -> float | None:
        return self._run(self._ttl_op(key))

    async def avalue_ttl(self, key: str) -> float | None:
        return await self._arun(self._ttl_op(key))

    def compare_and_set(self, key: str, expected: bytes | None, value: bytes | None,
                        ttl: float) -> bool:
        return self._run(self._cas_op(key, expected, value, ttl))

    async def acompare_and_set(self, key: str, expected: bytes | None, value: bytes | None,
                               ttl: float) -> bool:
        return await self._arun(self._cas_op(key, expected, value, ttl))

    def set_value(self, key: str, value: bytes, ttl: float) -> None:
        self._run(self._set_op(key, value, ttl))

    async def aset_value(self, key: str, value: bytes, ttl: float) -> None:
        await self._arun(self._set_op(key, value, ttl))

    def delete_value(self, key: str) -> None:
        self._run(self._delete_op(key))

    async def adelete_value(self, key: str) -> None:
        await self._arun(self._delete_op(key))

    # -- control: commands, revocations, rate limits, concurrency slots, delayed messages ------
    def _control_op(self, entries: Sequence[Event], retention: Retention) -> _Op[list[str]]:
        commands = control_redis.append_commands(self.prefix, entries, retention,
                                                 self.clock.time())
        return _Op([_Call(c) for c in commands],
                   lambda replies: [_text(r) for r in replies[:len(entries)]])

    def append_control(self, entries: Sequence[Event], retention: Retention) -> list[str]:
        return self._run(self._control_op(entries, retention)) if entries else []

    async def aappend_control(self, entries: Sequence[Event],
                              retention: Retention) -> list[str]:
        return await self._arun(self._control_op(entries, retention)) if entries else []

    async def aread_control(self, after: str | None, limit: int, wait: float) -> list[Event]:
        """XREAD BLOCK on the loop's client, as :meth:`read_events`."""
        stream = control_redis.control_key(self.prefix)
        try:
            reply = await self._side().client.xread(
                {stream: after or "$"}, count=limit, block=max(1, int(wait * 1000)))
        except RedisError as exc:
            raise self._error(exc) from exc
        return events_redis.parse_read(reply)

    async def alast_control_id(self) -> str | None:
        try:
            entries = await self._side().client.xrevrange(
                control_redis.control_key(self.prefix), count=1)
        except RedisError as exc:
            raise self._error(exc) from exc
        found = events_redis.parse_entries(entries)
        return found[0].id if found else None

    def _revoke_op(self, ids: Sequence[str], ttl: float) -> _Op[None]:
        commands = control_redis.revoke_commands(self.prefix, ids, ttl, self.clock.time())
        return _Op([_Call(c) for c in commands], lambda _: None)

    def revoke_ids(self, ids: Sequence[str], ttl: float) -> None:
        if ids:
            self._run(self._revoke_op(ids, ttl))

    async def arevoke_ids(self, ids: Sequence[str], ttl: float) -> None:
        if ids:
            await self._arun(self._revoke_op(ids, ttl))

    async def arevoked_ids(self) -> list[str]:
        call = _Call(control_redis.revoked_command(self.prefix, self.clock.time()))
        return await self._arun(_Op([call], lambda r: [_text(i) for i in r[0]]))

    async def acquire_rate(self, windows: Sequence[RateWindow], member: str) -> float:
        call = _script(limits_redis.ACQUIRE_RATE, limits_redis.rate_keys(self.prefix, windows),
                       limits_redis.rate_args(windows, member))
        return await self._arun(_Op([call], lambda replies: float(replies[0])))

    def _slot_op(self, script: lua.Script, key: str, args: Sequence[Any],
                 parse: Callable[[Any], T]) -> _Op[T]:
        call = _script(script, limits_redis.slot_keys(self.prefix, key), args)
        return _Op([call], lambda replies: parse(replies[0]))

    async def acquire_slot(self, key: str, limit: int, holder: str, lease: float,
                           waiter: Waiter, patience: float) -> tuple[bool, list[Waiter]]:
        args = [limit, holder, repr(float(lease)), waiter.queue, repr(float(patience))]
        return await self._arun(self._slot_op(
            limits_redis.ACQUIRE_SLOT, key, args,
            lambda reply: (bool(int(reply[0])), _waiters(reply[1]))))

    async def release_slot(self, key: str, limit: int, holder: str) -> list[Waiter]:
        return await self._arun(self._slot_op(limits_redis.RELEASE_SLOT, key, [limit, holder],
                                              _waiters))

    async def renew_slots(self, held: Sequence[tuple[str, str]], lease: float) -> set[str]:
        if not held:
            return set()
        calls = [_script(limits_redis.RENEW_SLOT, limits_redis.slot_keys(self.prefix, key),
                         [repr(float(lease)), holder]) for key, holder in held]
        return await self._arun(_Op(calls, lambda replies: {
            holder for (_, holder), ok in zip(held, replies, strict=True) if not int(ok)}))

    async def slot_woken(self, key: str, holder: str) -> bool:
        return await self._arun(self._slot_op(limits_redis.SLOT_WOKEN, key, [holder],
                                              lambda reply: bool(int(reply))))

    def scheduled(self, queue: str, limit: int = 100) -> list[Envelope]:
        def parse(replies: list[Any]) -> list[Envelope]:
            flat = replies[0]
            return [_envelope(queue, flat[i], flat[i + 2], flat[i + 3])
                    for i in range(0, len(flat), 4)]

        return self._run(_Op([self._plans._queue(control_redis.SCHEDULED, queue, [limit])],
                             parse))

    async def wake_delayed(self, queue: str, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        call = self._plans._queue(control_redis.WAKE, queue, [self._plans.wake(queue), *ids])
        return await self._arun(_Op([call], lambda replies: int(replies[0])))

    # -- closing -------------------------------------------------------------------------------
    def close(self) -> None:
        """Close the sync client; async clients of other loops are dropped (use aclose on them)."""
        with self._sides_lock:
            self._sides.clear()
        self._wire.close()
        self._client.close()
        for sentinel in _sentinel_clients(self._client):
            sentinel.close()

    async def aclose(self) -> None:
        """Close the running loop's async client and pub/sub connection, then the sync client."""
        with self._sides_lock:
            side = self._sides.pop(asyncio.get_running_loop(), None)
        if side is not None:
            await side.aclose()
        self.close()


def _sentinel_clients(client: _Client) -> list[Any]:
    """The clients a sentinel-managed pool asks for the master (closing the master's client
    leaves them open)."""
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    return list(getattr(manager, "sentinels", []))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _waiters(flat: Sequence[bytes]) -> list[Waiter]:
    """Waiters from a script's ``{queue, id, ...}`` reply."""
    return [Waiter(_text(flat[i]), _text(flat[i + 1])) for i in range(0, len(flat), 2)]


# -- per-event-loop machinery -----------------------------------------------------------------

class _AsyncSide:
    """What a store keeps per event loop: the async client, the pub/sub hub and the ack batcher,
    and when each queue's last claim started (for :meth:`RedisStore._wait`).

    Its connections are closed by :meth:`RedisStore.aclose`, or else when ``asyncio.run`` ends
    the loop: the side parks an async generator, and the loop closes every open async generator
    (running its ``finally``) before it closes itself.
    """

    def __init__(self, store: RedisStore) -> None:
        self.client: _Client = store._target.make_async()
        link = store._target.cluster_link
        self.wire: _AsyncWire | cluster.AsyncClusterWire = (
            _AsyncWire(self.client) if link is None
            else cluster.AsyncClusterWire(self.client, _AsyncWire))
        self._nodes = None if link is None else cluster.PubSubNodes(self.client, link)
        self.hub = _Hub(self._nodes or self.client, store._error, store.clock)
        self.acks = _AckBatcher(store)
        self.claimed_at: dict[str, float] = {}
        self._closed = False
        self._guard = self._close_with_loop()
        step: Any = self._guard.__anext__()  # runs to the yield: the loop now tracks it
        with contextlib.suppress(StopIteration):
            step.send(None)

    async def _close_with_loop(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.hub.aclose()
        await self.wire.close()
        if self._nodes is not None:
            await self._nodes.aclose()
        await self.client.aclose()
        for sentinel in _sentinel_clients(self.client):
            await sentinel.aclose()


_AckItem = tuple[Claim, ResultWrite | None]


class _AckBatcher:
    """Group commit for acks: an ack goes out at once when none is in flight; acks arriving
    while one is in flight wait and go together in the next round trip (one script call per
    queue), so concurrent tasks of one worker do not pay a round trip each."""

    def __init__(self, store: RedisStore) -> None:
        self._store = store
        self._busy = False
        self._pending: list[tuple[_AckItem, asyncio.Future[int]]] = []
        self._flusher: asyncio.Task[None] | None = None  # referenced so it is not collected

    async def ack(self, claim: Claim, result: ResultWrite | None) -> int:
        """The holder status of ``claim`` after the ack script ran (see redis_scripts.holder),
        ``result`` (if any) having been stored just before."""
        if self._busy:
            future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            self._pending.append(((claim, result), future))
            return await future
        self._busy = True
        try:
            (status,) = await self._send([(claim, result)])
        finally:
            self._next()
        return status

    async def _send(self, items: list[_AckItem]) -> list[int]:
        return await self._store._arun(self._store._plans.ack(items))

    def _next(self) -> None:
        self._busy = bool(self._pending)
        if self._busy:
            self._flusher = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        batch, self._pending = self._pending[:_ACK_BATCH], self._pending[_ACK_BATCH:]
        try:
            statuses = await self._send([item for item, _ in batch])
        except BaseException as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise  # cancelled: the waiting acks got the cancellation above
        else:
            for (_, future), status in zip(batch, statuses, strict=True):
                if not future.done():
                    future.set_result(status)
        finally:
            self._next()


class _Hub:
    """One pub/sub connection per event loop, shared by every waiter of the store.

    Queue wake-up channels are kept subscribed for good (``keep``); result channels are held
    while someone waits (``holding``). A reader task resolves waiters and records when each
    channel was last heard. When the connection breaks, every waiter is woken (to look again)
    and the reader reconnects and resubscribes with backoff.
    """

    def __init__(self, client: _Client, error: Callable[[RedisError], BrokerError],
                 clock: Clock) -> None:
        self.clock = clock
        self._client = client
        self._error = error
        self._pubsub: _Client | None = None
        self._kept: set[str] = set()
        self._held: collections.Counter[str] = collections.Counter()
        self._live: set[str] = set()
        self._confirming: dict[str, asyncio.Future[None]] = {}
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}
        self._heard: dict[str, float] = {}
        self._reader: asyncio.Task[None] | None = None
        self._sending = asyncio.Lock()

    def _wanted(self) -> set[str]:
        return self._kept | {c for c, n in self._held.items() if n > 0}

    def heard_since(self, channels: Iterable[str], since: float) -> bool:
        return any(self._heard.get(c, -math.inf) >= since for c in channels)

    async def keep(self, channels: Iterable[str]) -> bool:
        """Subscribe for good; True if a subscription had to be made (or remade) now."""
        self._kept.update(channels)
        return await self._ensure(channels)

    @contextlib.asynccontextmanager
    async def holding(self, channel: str) -> AsyncIterator[None]:
        """Hold a subscription to ``channel`` (confirmed by Redis) for the duration."""
        self._held[channel] += 1
        try:
            await self._ensure([channel])
            yield
        finally:
            self._held[channel] -= 1
            if self._held[channel] <= 0:
                del self._held[channel]
                await self._drop(channel)

    async def wait(self, channels: Sequence[str], timeout: float) -> None:
        """Until a message on one of ``channels``, a lost connection, or ``timeout``."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for channel in channels:
            self._waiters.setdefault(channel, set()).add(future)
        try:
            await asyncio.wait_for(future, max(timeout, 0.0))
        except TimeoutError:
            pass
        finally:
            for channel in channels:
                waiting = self._waiters.get(channel)
                if waiting is not None:
                    waiting.discard(future)
                    if not waiting:
                        del self._waiters[channel]

    async def _ensure(self, channels: Iterable[str]) -> bool:
        new = [c for c in dict.fromkeys(channels) if c not in self._live]
        if not new:
            return False
        confirmations = [self._confirmation(c) for c in new]
        try:
            await self._subscribe(new)
            self._start_reader()
            await asyncio.wait_for(
                asyncio.gather(*(asyncio.shield(f) for f in confirmations)), _CONFIRM_TIMEOUT)
        except RedisError as exc:
            raise self._error(exc) from exc
        except TimeoutError as exc:
            raise self._error(redis.TimeoutError("no confirmation of SUBSCRIBE")) from exc
        return True

    def _confirmation(self, channel: str) -> asyncio.Future[None]:
        """The future the reader resolves when ``channel``'s SUBSCRIBE is confirmed. Its failure
        is marked seen: a wait that gave up before it (its SUBSCRIBE failed) never reads it."""
        future = self._confirming.get(channel)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            future.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._confirming[channel] = future
        return future

    async def _subscribe(self, channels: Iterable[str]) -> None:
        """SUBSCRIBE on the shared connection, opening it (with every wanted channel) if there
        is none. One sender at a time: redis-py's PubSub opens a second connection when two
        tasks connect it at once, and the reader would never see the second one's messages."""
        channels = list(channels)
        async with self._sending:
            if self._pubsub is not None:
                if channels:
                    try:
                        await self._pubsub.subscribe(*channels)
                    except (RedisError, OSError):
                        # A connection that failed to subscribe (the server or, behind
                        # Sentinel, any master is gone) is dropped: the reader would fail on it.
                        pubsub, self._pubsub = self._pubsub, None
                        self._live.clear()
                        with contextlib.suppress(RedisError, OSError):
                            await pubsub.aclose()
                        raise
                return
            channels = sorted(self._wanted().union(channels))
            if not channels:
                return
            # Shared only once connected: the reader must never read a pub/sub that is still
            # connecting (or failed to), redis-py raises RuntimeError there.
            pubsub = self._client.pubsub()
            try:
                await pubsub.subscribe(*channels)
            except BaseException:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
                raise
            self._pubsub = pubsub

    async def _drop(self, channel: str) -> None:
        # Forget it now: a new holder must subscribe again, not trust a dying subscription.
        self._live.discard(channel)
        async with self._sending:
            if self._pubsub is not None and channel not in self._wanted():
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.unsubscribe(channel)

    def _start_reader(self) -> None:
        if self._reader is None or self._reader.done():
            self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        failures = 0
        while self._wanted() or self._confirming:
            try:
                if self._pubsub is None:  # lost: resubscribe whatever is still wanted
                    await self._subscribe(())
                if self._pubsub is None:
                    break
                message = await self._pubsub.get_message(timeout=_READ_SLICE)
            except (RedisError, OSError) as exc:
                failures += 1
                await self._lose(exc)
                await asyncio.sleep(min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** failures))
                continue
            failures = 0
            if message is not None:
                self._dispatch(message)

    def _dispatch(self, message: dict[str, Any]) -> None:
        channel = _text(message["channel"])
        if message["type"] == "subscribe":
            self._live.add(channel)
            confirming = self._confirming.pop(channel, None)
            if confirming is not None and not confirming.done():
                confirming.set_result(None)
        elif message["type"] == "message":
            self._heard[channel] = self.clock.monotonic()
            self._wake(self._waiters.get(channel, ()))

    @staticmethod
    def _wake(futures: Iterable[asyncio.Future[None]]) -> None:
        for future in list(futures):
            if not future.done():
                future.set_result(None)

    async def _lose(self, exc: BaseException) -> None:
        """The connection broke: drop it, fail pending subscriptions, wake every waiter."""
        pubsub, self._pubsub = self._pubsub, None
        self._live.clear()
        if pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()
        confirming, self._confirming = self._confirming, {}
        error = self._error(exc) if isinstance(exc, RedisError) else BrokerUnavailable(str(exc))
        for future in confirming.values():
            if not future.done():
                future.set_exception(error)
        self._wake(f for waiting in self._waiters.values() for f in waiting)

    async def aclose(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self._pubsub.aclose()
            self._pubsub = None


__all__ = ["SAFE_EVICTION_POLICIES", "RedisStore", "mask", "open_store"]
