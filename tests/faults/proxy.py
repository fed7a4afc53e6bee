"""A TCP proxy on loopback that a test controls, to cut or reset a producer's link mid-call.

It runs its own asyncio loop in a thread. Faults are armed for the next bytes that pass:

- ``cut_after(n)``: forward ``n`` more bytes towards the server, then reset both sides (a
  request cut in the middle, or just before or after its end);
- ``lose_reply()``: forward the request whole, then reset both sides at the first byte of the
  reply (the server did the work; the client never hears it);
- ``reset()``: reset every open connection now.

A reset closes the sockets with ``SO_LINGER`` 0, so the peers see a TCP RST.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from concurrent.futures import Future


class Proxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self.budget: int | None = None  # bytes towards the server before a reset
        self.drop_reply = False
        self.resets = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    def start(self) -> Proxy:
        self.thread.start()
        self._server = self._call(asyncio.start_server(self._accept, "127.0.0.1", 0)).result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def _call(self, coro: object) -> Future:  # type: ignore[type-arg]
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    def cut_after(self, nbytes: int) -> None:
        self.budget = nbytes

    def lose_reply(self) -> None:
        self.drop_reply = True

    def heal(self) -> None:
        self.budget, self.drop_reply = None, False

    def reset(self) -> None:
        self.loop.call_soon_threadsafe(self._reset_all)

    def close(self) -> None:
        async def stop() -> None:
            self._reset_all()
            if self._server is not None:
                self._server.close()

        with contextlib.suppress(Exception):
            self._call(stop()).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            _abort(writer)
            return
        link = (writer, up_writer)
        self.links.add(link)
        await asyncio.gather(self._pump(reader, up_writer, link, upstream=True),
                             self._pump(up_reader, writer, link, upstream=False),
                             return_exceptions=True)
        self.links.discard(link)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    link: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
                    upstream: bool) -> None:
        while data := await reader.read(65536):
            if upstream and self.budget is not None:
                if len(data) >= self.budget:
                    data, self.budget = data[:self.budget], None
                    writer.write(data)
                    with contextlib.suppress(ConnectionError):
                        await writer.drain()
                    self._reset(link)
                    return
                self.budget -= len(data)
            if not upstream and self.drop_reply:
                self.drop_reply = False
                self._reset(link)
                return
            writer.write(data)
            await writer.drain()
        self._reset(link)

    def _reset(self, link: tuple[asyncio.StreamWriter, asyncio.StreamWriter]) -> None:
        if link in self.links:
            self.links.discard(link)
            self.resets += 1
        for writer in link:
            _abort(writer)

    def _reset_all(self) -> None:
        for link in list(self.links):
            self._reset(link)


def _abort(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
