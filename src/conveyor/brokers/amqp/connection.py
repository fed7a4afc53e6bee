"""One AMQP connection per event loop, opened lazily and opened again after it drops.

A :class:`Client` belongs to the event loop it was made on (aio-pika's objects do). It connects on
first use; when the connection or its publishing channel has closed (RabbitMQ restarted, the
network dropped, a channel error), the next call connects again, so recovery needs no thread of
its own: producers get :class:`BrokerUnavailable` while RabbitMQ is down and succeed once it is
back, and consumers start consuming again from their own loop (see :mod:`.consuming`).

Driver errors are converted here and in :func:`driver_errors`, the one mapping point.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import aio_pika
import aiormq
import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractConnection

from ...errors import BrokerUnavailable, ConfigurationError
from .options import AmqpOptions

log = logging.getLogger("conveyor.broker.amqp")

#: What a lost connection or channel looks like from aio-pika and aiormq.
CONNECTION_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPConnectionError, aiormq.exceptions.ChannelInvalidStateError,
    aiormq.exceptions.ConnectionClosed, ConnectionError, OSError, asyncio.TimeoutError,
    RuntimeError,
)


def safe_text(options: AmqpOptions, exc: BaseException) -> str:
    """An exception's text without the password, whatever the driver put in it."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if options.password:
        text = text.replace(options.password, "***")
    return text


@contextlib.contextmanager
def driver_errors(options: AmqpOptions, doing: str) -> Iterator[None]:
    """Turn a lost connection into BrokerUnavailable and a refused declaration (arguments that
    differ from an existing queue's, a missing permission) into ConfigurationError."""
    try:
        yield
    except aiormq.exceptions.ChannelPreconditionFailed as exc:
        raise ConfigurationError(f"RabbitMQ at {options.url} refused to {doing}:"
                                 f" {safe_text(options, exc)}") from None
    except aiormq.exceptions.ChannelAccessRefused as exc:
        raise ConfigurationError(f"RabbitMQ at {options.url} denied access to {doing}:"
                                 f" {safe_text(options, exc)}") from None
    except CONNECTION_ERRORS as exc:
        raise BrokerUnavailable(f"RabbitMQ at {options.url} is unreachable ({doing}):"
                                f" {safe_text(options, exc)}") from None
    except aiormq.exceptions.AMQPError as exc:
        raise BrokerUnavailable(f"RabbitMQ at {options.url} failed to {doing}:"
                                f" {safe_text(options, exc)}") from None


def alive(connection: AbstractConnection) -> bool:
    """Whether ``connection`` can still carry frames. aio-pika's ``is_closed`` turns true only
    when *we* close it: a connection RabbitMQ closed (a restart, ``CONNECTION_FORCED``) or the
    network dropped only clears ``connected`` and closes the underlying aiormq connection."""
    if connection.is_closed or not connection.connected.is_set():
        return False
    transport = getattr(connection, "transport", None)
    return transport is not None and not transport.connection.is_closed


class Client:
    """The connection of one event loop, its confirming publish channel, and what it declared
    (topology is declared once per connection; RabbitMQ keeps durable declarations anyway)."""

    def __init__(self, options: AmqpOptions) -> None:
        self.options = options
        self.declared: dict[Any, asyncio.Future[None]] = {}
        self._connection: AbstractConnection | None = None
        self._publisher: aiormq.abc.AbstractChannel | None = None
        self._lock = asyncio.Lock()
        self.generation = 0  # raised on every new connection

    async def connection(self) -> AbstractConnection:
        """The open connection, made now if there is none (BrokerUnavailable if it fails)."""
        current = self._connection
        if current is not None and alive(current):
            return current
        async with self._lock:
            if self._connection is None or not alive(self._connection):
                await self._discard()
                self._connection = await self._connect()
                self._publisher = None
                self.declared = {}
                self.generation += 1
            return self._connection

    async def _connect(self) -> AbstractConnection:
        options = self.options
        with driver_errors(options, "connect"):
            return await aio_pika.connect(
                options.connect_url(), timeout=options.connect_timeout,
                ssl_context=options.ssl_context(),
                client_properties={"connection_name": "conveyor"})

    async def channel(self, confirms: bool = False) -> AbstractChannel:
        """A new channel on the connection (consumers and administration take their own)."""
        connection = await self.connection()
        with driver_errors(self.options, "open a channel"):
            channel = await connection.channel(publisher_confirms=confirms,
                                               on_return_raises=False)
            return channel

    async def publisher(self) -> aiormq.abc.AbstractChannel:
        """The channel every publish goes out on: confirms on, unroutable messages returned."""
        channel = self._publisher
        if channel is not None and not channel.is_closed and not self._stale():
            return channel
        opened = await self.channel(confirms=True)
        self._publisher = await opened.get_underlay_channel()
        return self._publisher

    def _stale(self) -> bool:
        return self._connection is None or not alive(self._connection)

    async def _discard(self) -> None:
        """Let go of a connection that dropped (its transport may still need closing)."""
        dead, self._connection = self._connection, None
        if dead is not None:
            with contextlib.suppress(Exception):
                await dead.close()

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        self._publisher = None
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(Exception):
                await connection.close()
