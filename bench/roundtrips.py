"""A counting TCP proxy in front of Redis: how many request/reply round trips clients make.

A round trip is counted when a client sends after having received something since it last sent
(or for the first time): a pipeline or a script call spread over several TCP segments counts
once, as does a blocking read that waits for its reply. The server is shared by other users, so
its own statistics (``INFO commandstats``) cannot isolate one library's traffic; this proxy sees
only the connections of the scenario that goes through it.

    proxy = Proxy("127.0.0.1", 6379); port = proxy.start(); ...; proxy.trips
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class Proxy:
    """Forwards 127.0.0.1:<port> to ``host:port`` in a background thread, counting trips."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.trips = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._listen_port = 0

    def start(self) -> int:
        """Start forwarding; the local port clients should connect to."""
        threading.Thread(target=self._run, daemon=True).start()
        self._ready.wait(10)
        return self._listen_port

    def count(self) -> int:
        with self._lock:
            return self.trips

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", 0))
        self._listen_port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.port)
        with self._lock:
            self.connections += 1
        replied = [True]  # a client's first send starts a round trip

        async def upstream() -> None:
            while data := await reader.read(65536):
                if replied[0]:
                    replied[0] = False
                    with self._lock:
                        self.trips += 1
                up_writer.write(data)
                await up_writer.drain()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                replied[0] = True
                writer.write(data)
                await writer.drain()

        tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for w in (writer, up_writer):
            with contextlib.suppress(Exception):
                w.close()
