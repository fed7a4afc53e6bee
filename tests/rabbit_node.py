"""A private RabbitMQ node for tests that stop and start the server: never the shared one.

It runs the installed ``rabbitmq-server`` with its own node name, free ports (AMQP, TLS and
Erlang distribution), data and log directories and config file under a temporary directory;
it is stopped by the process id this module started it with.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.stores import unavailable

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


class PrivateNode:
    """``start()`` / ``stop()`` a node of our own; ``url`` reaches it as guest."""

    def __init__(self, base: Path, tls: dict[str, Path] | None = None,
                 conf: tuple[str, ...] = (), advanced: str = "[].") -> None:
        """``conf``: more ``rabbitmq.conf`` lines; ``advanced``: the ``advanced.config`` term
        (settings the new format lacks, such as ``channel_tick_interval``)."""
        if not os.path.exists(SERVER) or shutil.which("rabbitmqctl") is None:
            unavailable("an installed rabbitmq-server")
        self.base = base
        self.port, self.dist_port = free_port(), free_port()
        self.tls_port = free_port() if tls else None
        self.name = f"ctest-{uuid.uuid4().hex[:8]}@localhost"
        self.proc: subprocess.Popen[bytes] | None = None
        for sub in ("mnesia", "log"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        (base / "enabled_plugins").write_text("[].\n")
        lines = [f"listeners.tcp.default = 127.0.0.1:{self.port}", "loopback_users = none"]
        if tls:
            lines += [f"listeners.ssl.default = 127.0.0.1:{self.tls_port}",
                      f"ssl_options.cacertfile = {tls['ca']}",
                      f"ssl_options.certfile = {tls['cert']}",
                      f"ssl_options.keyfile = {tls['key']}",
                      "ssl_options.verify = verify_none",
                      "ssl_options.fail_if_no_peer_cert = false"]
        (base / "rabbitmq.conf").write_text("\n".join([*lines, *conf]) + "\n")
        (base / "advanced.config").write_text(advanced + "\n")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    def _env(self) -> dict[str, str]:
        base = self.base
        return {**os.environ, "HOME": str(base), "RABBITMQ_NODENAME": self.name,
                "RABBITMQ_NODE_PORT": str(self.port), "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
                "RABBITMQ_LOG_BASE": str(base / "log"),
                "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
                "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
                "RABBITMQ_PID_FILE": str(base / "pid")}

    def start(self, timeout: float = 90.0) -> None:
        with open(self.base / "server.out", "ab") as log:  # the child keeps its own copy
            self.proc = subprocess.Popen([SERVER], env=self._env(), stdout=log, stderr=log,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while not port_open(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = (self.base / "server.out").read_text(errors="replace")[-2000:]
                self.stop()
                pytest.fail(f"private RabbitMQ node did not start: {tail}")
            time.sleep(0.2)

    def queue_depths(self) -> dict[str, tuple[int, int]]:
        """The node's non-empty queues: name -> (ready, unacknowledged), from rabbitmqctl."""
        cookie = (self.base / ".erlang.cookie").read_text().strip()  # the CLI runs as its user
        listed = subprocess.run(
            ["rabbitmqctl", "-n", self.name, "--erlang-cookie", cookie, "-q", "--no-table-headers",
             "list_queues", "name", "messages_ready", "messages_unacknowledged"],
            env=self._env(), capture_output=True, text=True, timeout=60, check=False).stdout
        rows = [line.rsplit(None, 2) for line in listed.splitlines()]
        return {r[0]: (int(r[1]), int(r[2])) for r in rows
                if len(r) == 3 and r[1].isdigit() and r[2].isdigit() and r[1:] != ["0", "0"]}

    def stop(self) -> None:
        """Stop the node we started (its process group, by the id we started it with)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        deadline = time.monotonic() + 30
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)
