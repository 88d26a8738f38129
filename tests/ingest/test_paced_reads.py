"""Paced reads of the AMQP socket: trickling bytes come several to a read, a backlog at once."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aio_pika
from aio_pika import RobustConnection
from yarl import URL

from ingest.paced_reads import SMALL_READ_BYTES, PacedProtocol, PacedTransportFactory, paced
from tests.helpers import assert_eventually

LIMIT_S = 30  # a hang fails the test instead of the suite


async def _until(check: Callable[[], bool]) -> None:
    async def holds() -> None:
        assert check()

    await assert_eventually(holds, timeout=LIMIT_S, interval=0.005)


def _reading(writer: asyncio.StreamWriter) -> bool:
    transport = writer.transport
    assert isinstance(transport, asyncio.Transport)
    return transport.is_reading()


@asynccontextmanager
async def _peer() -> AsyncIterator[tuple[URL, asyncio.Queue[asyncio.StreamWriter]]]:
    """A loopback server; each accepted connection's writer is put on the queue."""
    accepted: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()

    async def on_connect(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put(writer)

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield URL(f"amqp://127.0.0.1:{port}/"), accepted


async def test_bytes_trickling_in_during_a_tick_come_in_one_read() -> None:
    async with _peer() as (url, accepted):
        reader, writer = await PacedTransportFactory(tick_s=1.0).create(url)
        sender = await accepted.get()
        sender.write(b"a")
        assert await reader.read(100) == b"a"
        assert not _reading(writer)  # a small read rests the socket
        for chunk in (b"b", b"c", b"d"):
            sender.write(chunk)
            await sender.drain()
            await asyncio.sleep(0.01)
        async with asyncio.timeout(LIMIT_S):
            assert await reader.read(100) == b"bcd"  # unpaced, "b" would come alone
        assert not _reading(writer)  # and the tick starts again
        await _until(lambda: _reading(writer))
        writer.close()
        sender.close()


async def test_a_large_read_does_not_pause() -> None:
    loop = asyncio.get_running_loop()
    ours, theirs = socket.socketpair()
    theirs.setblocking(False)
    sent = theirs.send(b"x" * (4 * SMALL_READ_BYTES))  # what fits in the socket's buffer
    assert sent >= SMALL_READ_BYTES, "the socket buffer holds less than one large read"
    reader = asyncio.StreamReader(limit=8 * SMALL_READ_BYTES)
    protocol = PacedProtocol(reader, tick_s=3600)
    transport, _ = await loop.create_connection(lambda: protocol, sock=ours)
    async with asyncio.timeout(LIMIT_S):
        first = await reader.read(8 * SMALL_READ_BYTES)
    assert len(first) >= SMALL_READ_BYTES
    assert transport.is_reading()
    transport.close()
    theirs.close()


async def test_closing_while_paused_leaves_no_resume_behind() -> None:
    async with _peer() as (url, accepted):
        reader, writer = await PacedTransportFactory(tick_s=3600).create(url)
        sender = await accepted.get()
        sender.write(b"a")
        await reader.read(1)
        assert not _reading(writer)
        writer.close()
        await writer.wait_closed()  # the hour's resume is cancelled with the connection
        sender.close()


async def test_a_paced_robust_connection_delivers_every_message(amqp_url: str) -> None:
    factory = PacedTransportFactory(tick_s=0.05)
    connection_class = paced(RobustConnection, factory)
    connection = await aio_pika.connect_robust(amqp_url, connection_class=connection_class)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"paced-{uuid.uuid4().hex[:8]}", exclusive=True)
        got: list[bytes] = []

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            got.append(message.body)
            await message.ack()

        await queue.consume(on_message)
        sent = [str(n).encode() for n in range(40)]
        for body in sent:
            await channel.default_exchange.publish(aio_pika.Message(body), queue.name)
            await asyncio.sleep(0.002)
        await _until(lambda: len(got) >= len(sent))
    assert got == sent
    assert factory.opened == 1  # the connection read through it
