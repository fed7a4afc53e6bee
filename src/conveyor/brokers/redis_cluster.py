"""The Redis store on Redis Cluster: routing an operation's commands to the masters of their
hash slots, and ``WAIT`` after writes (on a cluster or a single server).

The store builds every operation as a list of commands (see :mod:`conveyor.brokers.redis`); on
one server they go out as one pipeline. On a cluster a command goes to the master serving the
slot of its first key (a queue script's keys share the queue's hash tag, so one slot): the
commands of one *stage* are grouped by master and sent to every master at once, each group
pipelined on one connection, and the stages follow one another (a result is stored before the
acknowledgement that depends on it, even when the two live on different masters). A command
answered ``MOVED`` (a failover or resharding moved its slot) or ``NOSCRIPT`` (a master that has
not seen the script yet) is sent again before the next stage starts, so the order holds.

Keyless commands (``PUBLISH``) go to any master: Redis Cluster forwards a publication to every
node, so a subscriber on any node hears it. The pub/sub side therefore subscribes on one node
and moves to another when that one fails (:class:`PubSubNodes`).

``WAIT n ms``, when the URL asks for it (``wait_replicas``, ``wait_timeout_ms``), follows the
writes of a durable operation on each connection that carried them; fewer than ``n``
acknowledgements raise :class:`NotReplicated`, converted by the store into
:class:`conveyor.errors.NotReplicated`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import redis
import redis.asyncio
import redis.asyncio.cluster
import redis.cluster
from redis.backoff import NoBackoff
from redis.exceptions import (
    AskError,
    ClusterDownError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    TryAgainError,
)
from redis.retry import Retry

#: How often one command is sent again after MOVED / TRYAGAIN / NOSCRIPT before its reply stands.
_ROUNDS = 4
#: Replies after which the slot map is read again before the command is resent.
_STALE = (AskError, ClusterDownError, TryAgainError)


class NotReplicated(RedisError):
    """``WAIT`` returned fewer replica acknowledgements than asked for."""


@dataclass(frozen=True)
class Durability:
    """``WAIT replicas timeout_ms`` after the writes of durable operations."""

    replicas: int
    timeout_ms: int

    def command(self) -> tuple[Any, ...]:
        return ("WAIT", self.replicas, self.timeout_ms)

    def check(self, acknowledged: Any) -> None:
        if isinstance(acknowledged, Exception):
            raise acknowledged
        if int(acknowledged) < self.replicas:
            raise NotReplicated(
                f"write acknowledged by {int(acknowledged)} of {self.replicas} replicas"
                f" within {self.timeout_ms} ms")


def durability(query: dict[str, str]) -> Durability | None:
    """Pop ``wait_replicas`` and ``wait_timeout_ms`` (default 1000) from a URL's query."""
    replicas = query.pop("wait_replicas", None)
    timeout = query.pop("wait_timeout_ms", None)
    if replicas is None:
        if timeout is not None:
            raise ValueError("wait_timeout_ms needs wait_replicas")
        return None
    wanted, ms = int(replicas), int(timeout or 1000)
    if wanted < 1 or ms < 1:
        raise ValueError(f"wait_replicas and wait_timeout_ms must be >= 1 (got {wanted}, {ms})")
    return Durability(wanted, ms)


class CallLike(Protocol):
    """What the store's calls offer: the command, and its EVAL twin for a NOSCRIPT reply."""

    @property
    def args(self) -> tuple[Any, ...]: ...

    def as_eval(self) -> tuple[Any, ...]: ...


def command_key(args: Sequence[Any]) -> Any:
    """The key that routes a command (its first key), or None for a keyless one."""
    name = args[0].upper() if isinstance(args[0], str) else args[0].decode().upper()
    if name in ("EVALSHA", "EVAL"):
        return args[3] if int(args[2]) > 0 else None
    if name in ("PUBLISH", "WAIT") or len(args) < 2:
        return None
    return args[1]


def stage_ranges(count: int, stages: Sequence[int]) -> list[range]:
    """``range(count)`` cut at the given stage starts."""
    cuts = [0, *(s for s in stages if 0 < s < count), count]
    return [range(a, b) for a, b in itertools.pairwise(cuts) if b > a]


class _Round:
    """One stage's commands still to send (indexes into the operation) and their forms."""

    def __init__(self, calls: Sequence[CallLike], indexes: range) -> None:
        self.calls = calls
        self.todo = list(indexes)
        self.evals: set[int] = set()
        self.stale = False

    def command(self, index: int) -> tuple[Any, ...]:
        call = self.calls[index]
        return call.as_eval() if index in self.evals else call.args

    def settle(self, replies: dict[int, Any], out: list[Any], last: bool) -> None:
        """Keep final replies; what NOSCRIPT or MOVED answered goes round again."""
        again = []
        for index, reply in replies.items():
            out[index] = reply
            if last:
                continue
            if isinstance(reply, NoScriptError) and index not in self.evals:
                self.evals.add(index)
                again.append(index)
            elif isinstance(reply, _STALE):
                self.stale = True
                again.append(index)
        self.todo = sorted(again)


class SyncNodeWire(Protocol):
    def send(self, commands: list[tuple[Any, ...]]) -> Any: ...

    def receive(self, conn: Any, count: int) -> list[Any]: ...

    def close(self) -> None: ...


class AsyncNodeWire(Protocol):
    async def call(self, commands: list[tuple[Any, ...]]) -> list[Any]: ...

    async def close(self) -> None: ...


def _groups(client: Any, round_: _Round, wait: Durability | None
            ) -> dict[str, tuple[Any, list[int], list[tuple[Any, ...]]]]:
    """Node name -> (node, indexes, commands) for what is left of a round."""
    manager = client.nodes_manager
    groups: dict[str, tuple[Any, list[int], list[tuple[Any, ...]]]] = {}
    for index in round_.todo:
        command = round_.command(index)
        key = command_key(command)
        node = (manager.get_node_from_slot(client.keyslot(key)) if key is not None
                else client.get_primaries()[0])
        groups.setdefault(node.name, (node, [], []))
        groups[node.name][1].append(index)
        groups[node.name][2].append(command)
    if wait is not None:
        for _, _, commands in groups.values():
            commands.append(wait.command())
    return groups


def _take_replies(indexes: list[int], replies: list[Any], wait: Durability | None,
                  into: dict[int, Any]) -> None:
    if wait is not None:
        wait.check(replies[-1])
    into.update(zip(indexes, replies, strict=False))


class SyncClusterWire:
    """Runs operations on a sync :class:`redis.cluster.RedisCluster`'s masters."""

    def __init__(self, client: Any, make_wire: Callable[[Any], SyncNodeWire]) -> None:
        self._client = client
        self._make_wire = make_wire
        self._wires: dict[str, SyncNodeWire] = {}
        self._stale = False

    def run(self, calls: Sequence[CallLike], stages: Sequence[int],
            wait: Durability | None) -> list[Any]:
        out: list[Any] = [None] * len(calls)
        for indexes in stage_ranges(len(calls), stages):
            round_ = _Round(calls, indexes)
            for n in range(_ROUNDS):
                self._refresh(round_)
                round_.settle(self._send(round_, wait), out, n == _ROUNDS - 1)
                if not round_.todo:
                    break
        return out

    def _refresh(self, round_: _Round) -> None:
        if self._stale or round_.stale:
            round_.stale = False
            try:
                self._client.nodes_manager.initialize()
            except RedisClusterException as exc:
                raise redis.ConnectionError(str(exc)) from exc
            self._stale = False

    def _send(self, round_: _Round, wait: Durability | None) -> dict[int, Any]:
        """Write every master's commands, then read every master's replies; a connection
        left unread by a failure is closed (its replies would confuse the next call)."""
        pending: list[tuple[SyncNodeWire, list[int], Any, int]] = []
        try:
            for node, indexes, commands in _groups(self._client, round_, wait).values():
                wire = self._wire(node)
                pending.append((wire, indexes, wire.send(commands), len(commands)))
            replies: dict[int, Any] = {}
            while pending:
                wire, indexes, conn, count = pending.pop(0)
                _take_replies(indexes, wire.receive(conn, count), wait, replies)
            return replies
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            self._stale = True  # the next operation reads the slot map first
            raise
        except RedisClusterException as exc:
            self._stale = True
            raise redis.ConnectionError(str(exc)) from exc
        finally:
            for _, _, conn, _ in pending:
                conn.disconnect()

    def _wire(self, node: Any) -> SyncNodeWire:
        wire = self._wires.get(node.name)
        if wire is None:
            wire = self._wires[node.name] = self._make_wire(node.redis_connection)
        return wire

    def close(self) -> None:
        for wire in self._wires.values():
            wire.close()
        self._wires.clear()


class _NodePool:
    """A connection factory for an async cluster node, in the shape the node wire expects
    (``connection_pool.make_connection()``); the connections belong to the wire."""

    def __init__(self, node: Any) -> None:
        self.connection_pool = self
        self._node = node

    def make_connection(self) -> Any:
        options = {**self._node.connection_kwargs, "retry": Retry(NoBackoff(), 0)}
        return self._node.connection_class(**options)


class AsyncClusterWire:
    """The async twin of :class:`SyncClusterWire`: the masters are asked concurrently."""

    def __init__(self, client: Any, make_wire: Callable[[Any], AsyncNodeWire]) -> None:
        self._client = client
        self._make_wire = make_wire
        self._wires: dict[str, AsyncNodeWire] = {}
        self._stale = True  # the async client reads the slot map on first use

    async def run(self, calls: Sequence[CallLike], stages: Sequence[int],
                  wait: Durability | None) -> list[Any]:
        out: list[Any] = [None] * len(calls)
        for indexes in stage_ranges(len(calls), stages):
            round_ = _Round(calls, indexes)
            for n in range(_ROUNDS):
                await self._refresh(round_)
                round_.settle(await self._send(round_, wait), out, n == _ROUNDS - 1)
                if not round_.todo:
                    break
        return out

    async def _refresh(self, round_: _Round) -> None:
        if self._stale or round_.stale:
            round_.stale = False
            try:
                if getattr(self._client, "_initialize", False):  # never initialized yet
                    await self._client.initialize()
                else:
                    await self._client.nodes_manager.initialize()
            except RedisClusterException as exc:
                raise redis.ConnectionError(str(exc)) from exc
            self._stale = False

    async def _send(self, round_: _Round, wait: Durability | None) -> dict[int, Any]:
        try:
            groups = list(_groups(self._client, round_, wait).values())
            results = await asyncio.gather(
                *(self._wire(node).call(commands) for node, _, commands in groups),
                return_exceptions=True)
        except RedisClusterException as exc:
            self._stale = True
            raise redis.ConnectionError(str(exc)) from exc
        replies: dict[int, Any] = {}
        for (_, indexes, _), result in zip(groups, results, strict=True):
            if isinstance(result, BaseException):
                self._stale = isinstance(result, redis.ConnectionError | redis.TimeoutError
                                         | OSError) or self._stale
                raise result
            _take_replies(indexes, result, wait, replies)
        return replies

    def _wire(self, node: Any) -> AsyncNodeWire:
        wire = self._wires.get(node.name)
        if wire is None:
            wire = self._wires[node.name] = self._make_wire(_NodePool(node))
        return wire

    async def close(self) -> None:
        for wire in self._wires.values():
            await wire.close()
        self._wires.clear()


class PubSubNodes:
    """Stands in for a client's ``pubsub()`` on an async cluster (whose redis-py client has no
    pub/sub): each call subscribes through the next node of the cluster's latest map, so a
    reconnect after a node failed goes elsewhere."""

    def __init__(self, client: Any, options: dict[str, Any]) -> None:
        self._client = client
        self._options = options
        self._turn = itertools.count()
        self._clients: list[Any] = []

    def pubsub(self) -> Any:
        nodes = self._client.get_nodes() or self._client.nodes_manager.startup_nodes.values()
        nodes = sorted(nodes, key=lambda n: n.name)
        node = nodes[next(self._turn) % len(nodes)]
        one = redis.asyncio.Redis(host=node.host, port=node.port, **self._options)
        self._clients.append(one)
        return one.pubsub()

    async def aclose(self) -> None:
        for one in self._clients:
            await one.aclose()
        self._clients.clear()


def primaries(client: Any) -> list[Any]:
    """Plain sync clients of a sync cluster's masters (for settings checks)."""
    return [client.get_redis_connection(node) for node in client.get_primaries()]


def startup_nodes(module: Any, hosts: Sequence[tuple[str, int]]) -> list[Any]:
    return [module.ClusterNode(host, port) for host, port in hosts]


def make_clients(hosts: Sequence[tuple[str, int]], sync_options: dict[str, Any],
                 async_options: dict[str, Any]) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """Factories of the sync and async cluster clients (every read served by the masters)."""

    def make_sync() -> Any:
        try:
            return redis.cluster.RedisCluster(
                startup_nodes=startup_nodes(redis.cluster, hosts), **sync_options)
        except RedisClusterException as exc:
            raise redis.ConnectionError(str(exc)) from exc

    def make_async() -> Any:
        return redis.asyncio.cluster.RedisCluster(
            startup_nodes=startup_nodes(redis.asyncio.cluster, hosts), **async_options)

    return make_sync, make_async


__all__ = ["AsyncClusterWire", "Durability", "NotReplicated", "PubSubNodes", "SyncClusterWire",
           "command_key", "durability", "make_clients", "primaries", "stage_ranges"]
