"""Reading the AMQP socket in ticks when parts trickle in, through aiormq's public
`transport_factory` (set on aio-pika's connection by `paced`).

Trickling, each socket read carries two or three deliveries, and every read wakes the event
loop, the connection's frame reader and the channel's: a bare aio-pika consumer then pays
3-4 times its CPU per message of draining a full queue (bench/consumer.py). Here a small
read (less than `SMALL_READ_BYTES`) pauses the socket for `tick_s`; the deliveries that
arrive meanwhile wait in the kernel's buffer and come in one read, one wake-up for all.
A large read never pauses: a backlog drains at full speed. The pause delays a live part by
at most `tick_s` (INGEST_READ_TICK_MS).

What the broker may send unasked is bounded by the prefetch, so a paused socket holds at
most that many deliveries; for the same reason a resume that overrides the stream reader's
own pause (its buffer full) lets in at most a prefetch more. Heartbeats are read within a
tick of arriving.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from aio_pika.abc import AbstractConnection
from aiormq.connection import TCPTransportFactory, TLSTransportFactory, TransportFactory
from aiormq.exceptions import AMQPConnectionError
from yarl import URL

# asyncio reads up to 256 KiB at a time. A read under half of that had no backlog behind it
# (loopback delivers 64-KiB segments, so one segment is not yet a backlog); paced, a stream
# of up to this much per tick keeps its rate.
SMALL_READ_BYTES = 128 * 1024


class PacedProtocol(asyncio.StreamReaderProtocol):
    """A stream reader's protocol that rests the socket for a tick after a small read."""

    def __init__(self, reader: asyncio.StreamReader, tick_s: float) -> None:
        super().__init__(reader)
        self._tick_s = tick_s
        self._socket: asyncio.Transport | None = None
        self._resume: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert isinstance(transport, asyncio.Transport)
        self._socket = transport

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        transport = self._socket
        if len(data) >= SMALL_READ_BYTES or transport is None or self._resume is not None:
            return
        transport.pause_reading()
        self._resume = asyncio.get_running_loop().call_later(self._tick_s, self._resume_reading)

    def _resume_reading(self) -> None:
        self._resume = None
        if self._socket is not None and not self._socket.is_closing():
            self._socket.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        self._socket = None
        super().connection_lost(exc)


class PacedTransportFactory(TransportFactory):
    """Plain TCP (as aiormq's own factory) with a paced reader; TLS URLs go to aiormq's."""

    def __init__(self, tick_s: float) -> None:
        self._tick_s = tick_s
        self.opened = 0  # connections made through it (a reconnect makes one more)

    async def create(
        self, url: URL, **kwargs: Any
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if url.scheme == "amqps" or self._tick_s <= 0:
            return await _default(url).create(url, **kwargs)
        kwargs.pop("ssl_context_provider", None)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=kwargs.pop("limit", 2**16), loop=loop)
        protocol = PacedProtocol(reader, self._tick_s)
        try:
            transport, _ = await loop.create_connection(
                lambda: protocol, host=url.host or "localhost", port=url.port or 5672, **kwargs
            )
        except OSError as e:
            raise AMQPConnectionError(*e.args) from e
        self.opened += 1
        return reader, asyncio.StreamWriter(transport, protocol, reader, loop)


def _default(url: URL) -> TransportFactory:
    return TLSTransportFactory() if url.scheme == "amqps" else TCPTransportFactory()


C = TypeVar("C", bound=AbstractConnection)


def paced(connection_class: type[C], factory: TransportFactory) -> type[C]:
    """`connection_class` (aio-pika's `connection_class=`) connecting through `factory` (a
    `PacedTransportFactory`) on every (re)connect. aio-pika hands its connection's `kwargs` to aiormq's connection,
    but turns those given to `connect` into URL parameters, so the factory is set here."""

    class Paced(connection_class):  # type: ignore[valid-type,misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.kwargs["transport_factory"] = factory

    return Paced
