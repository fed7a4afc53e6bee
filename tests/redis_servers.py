"""Private Redis deployments for tests, started from the installed binaries on free loopback
ports and ended by their PIDs: a cluster of three masters with a replica each, and a primary
with a replica watched by three sentinels.

The cluster is started once per test session (:func:`session_cluster`), on first use, and
stopped when the session ends; a test that kills one of its nodes uses a cluster of its own.
"""

from __future__ import annotations

import atexit
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from conveyor.errors import BrokerError
from tests.stores import unavailable


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


#: A replica's first sync starts at once (the default waits 5 s for more replicas to join).
_NO_SYNC_DELAY = ("--repl-diskless-sync-delay", "0")

_STARTED: list[subprocess.Popen[bytes]] = []


def free_port(pair: bool = False) -> int:
    """A free loopback port (and, with ``pair``, its cluster-bus port ``port + 10000`` too)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if not pair or port + 10000 > 65535:
            if not pair:
                return port
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        unavailable(f"the {name} binary")
    assert found is not None
    return found


def _wait_until(check: object, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():  # type: ignore[operator]
                return
        except (redis.RedisError, OSError):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        time.sleep(0.05)


class Node:
    """One redis-server (or sentinel) process of a test deployment."""

    def __init__(self, workdir: Path, port: int, *args: str, config: Path | None = None) -> None:
        self.port = port
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.argv = [_binary("redis-server"), *([str(config)] if config else []), "--port",
                     str(port), "--bind", "127.0.0.1", "--dir", str(workdir), "--save", "",
                     *([] if "--sentinel" in args else _NO_SYNC_DELAY), *args]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Node:
        return self.launch().ready()

    def launch(self) -> Node:
        """Start the process without waiting for it (see :meth:`ready`)."""
        log = open(self.workdir / "server.log", "ab")  # noqa: SIM115 - kept for the process
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT)
        _STARTED.append(self.proc)
        return self

    def ready(self) -> Node:
        """Wait until the server answers PING."""
        client = redis.Redis(port=self.port, socket_timeout=2)
        try:
            _wait_until(client.ping, f"redis on port {self.port}", 20)
        finally:
            client.close()
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)


class Cluster:
    """Three masters and one replica each, ``--cluster-node-timeout`` short so a killed master
    is replaced within a few seconds."""

    def __init__(self, masters: int = 3, node_timeout_ms: int = 2000) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="conveyor-cluster-"))
        self.nodes = [
            Node(self.dir / str(i), port, "--cluster-enabled", "yes",
                 "--cluster-config-file", str(self.dir / f"nodes-{i}.conf"),
                 "--cluster-node-timeout", str(node_timeout_ms), "--appendonly", "no",
                 "--cluster-announce-ip", "127.0.0.1")
            for i, port in enumerate(free_port(pair=True) for _ in range(masters * 2))
        ]

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> Cluster:
        for node in self.nodes:
            node.launch()
        for node in self.nodes:
            node.ready()
        hosts = [f"127.0.0.1:{n.port}" for n in self.nodes]
        subprocess.run([_binary("redis-cli"), "--cluster", "create", *hosts,
                        "--cluster-replicas", "1", "--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL, timeout=60)
        _wait_until(self.healthy, "a healthy cluster")
        return self

    def healthy(self, masters: int = 3) -> bool:
        """Every live node says the cluster is ok, sees every slot served and ``masters``
        masters (replicas included in the count of live nodes it knows)."""
        for node in self.live():
            with node.client() as client:
                info = _text(client.execute_command("CLUSTER", "INFO"))
                if "cluster_state:ok" not in info or "cluster_slots_ok:16384" not in info:
                    return False
                if len(self.masters(client)) != masters:
                    return False
                role = client.info("replication")
                if role["role"] == "slave" and role.get("master_link_status") != "up":
                    return False
        return True

    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.proc is not None]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes[:3])

    def masters(self, client: redis.Redis | None = None) -> dict[str, Node]:
        """Node id -> node, for the live masters that serve slots (per CLUSTER NODES of
        ``client``, else of the first live node)."""
        by_port = {n.port: n for n in self.nodes}
        if client is None:
            with self.live()[0].client() as own:
                return self.masters(own)
        found: dict[str, Node] = {}
        for line in _text(client.execute_command("CLUSTER", "NODES")).splitlines():
            fields = line.split()
            port = int(fields[1].split("@")[0].rsplit(":", 1)[1])
            if "master" in fields[2] and "fail" not in fields[2] and len(fields) > 8:
                found[fields[0]] = by_port[port]
        return found

    def master_of(self, key: str) -> Node:
        """The node serving ``key``'s hash slot now."""
        with self.live()[0].client() as client:
            slot = int(client.execute_command("CLUSTER", "KEYSLOT", key))
            for start, end, master, *_ in client.execute_command("CLUSTER", "SLOTS"):
                if start <= slot <= end:
                    port = int(master[1])
                    return next(n for n in self.nodes if n.port == port)
        raise LookupError(key)

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class Sentinels:
    """A primary, its replica and three sentinels watching them as ``mymaster`` (quorum 2,
    down after 1 s), all on loopback."""

    SERVICE = "mymaster"

    def __init__(self, down_after_ms: int = 1000) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="conveyor-sentinel-"))
        self.primary = Node(self.dir / "primary", free_port(), "--appendonly", "no")
        self.replica = Node(self.dir / "replica", free_port(), "--appendonly", "no",
                            "--replicaof", "127.0.0.1", str(self.primary.port))
        self.sentinels = []
        for i in range(3):
            conf = self.dir / f"sentinel-{i}.conf"
            conf.write_text(
                f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {self.SERVICE} {down_after_ms}\n"
                f"sentinel failover-timeout {self.SERVICE} 10000\n"
                f"sentinel parallel-syncs {self.SERVICE} 1\n")
            self.sentinels.append(
                Node(self.dir / f"s{i}", free_port(), "--sentinel", config=conf))

    def __enter__(self) -> Sentinels:
        for node in (self.primary, self.replica, *self.sentinels):
            node.launch()
        for node in (self.primary, self.replica, *self.sentinels):
            node.ready()
        _wait_until(self._watching, "sentinels that know the replica and each other")
        return self

    def __exit__(self, *_: object) -> None:
        for node in (self.primary, self.replica, *self.sentinels):
            node.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _watching(self) -> bool:
        for sentinel in self.sentinels:
            with sentinel.client() as client:
                info = client.execute_command("SENTINEL", "MASTER", self.SERVICE)
                fields = dict(zip(info[::2], info[1::2], strict=False)) if isinstance(
                    info, list) else info
                fields = {_text(k): _text(v) for k, v in fields.items()}
                if int(fields["num-slaves"]) < 1 or int(fields["num-other-sentinels"]) < 2:
                    return False
        return True

    def current_primary(self) -> int:
        """The port the sentinels name as the primary now."""
        with self.sentinels[0].client() as client:
            _, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME",
                                             self.SERVICE)
        return int(port)

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{self.SERVICE}/0"


def drop_cluster_prefix(cluster: Cluster, prefix: str) -> None:
    """Delete every key of a test prefix on each master, one key per DEL (slots differ)."""
    for node in cluster.masters().values():
        with node.client() as client:
            keys = list(client.scan_iter(match=f"*{prefix}*", count=1000))
            with client.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.delete(key)
                pipe.execute()


_SESSION: Cluster | None = None


def session_cluster() -> Cluster:
    """The cluster shared by this test session (started on first use; the contract suite and
    the tests that do not kill nodes use it, each under its own key prefix)."""
    global _SESSION
    if _SESSION is None:
        _SESSION = Cluster().start()
        atexit.register(_SESSION.stop)
    return _SESSION


@atexit.register
def _end_all() -> None:
    for proc in _STARTED:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def first_success(send: Any, deadline: float) -> tuple[Any, int]:
    """Call ``send`` until it returns (BrokerError meanwhile); its result and failures."""
    failures = 0
    while True:
        try:
            return send(), failures
        except BrokerError:
            failures += 1
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
