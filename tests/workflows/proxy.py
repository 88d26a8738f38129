"""TCP relays in front of S3 that a test can stall or blackhole, so a request hangs mid-way."""

from __future__ import annotations

import asyncio
import contextlib


class StallingProxy:
    """Relays 127.0.0.1:<port> to `target`; while `stalled`, holds connections silently."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.stalled = False
        self.held = 0  # connections accepted while stalled

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self.stalled:
                self.held += 1
                await reader.read()  # until the client goes away (or is killed)
                return
            await self._relay(reader, writer)
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(OSError):
        writer.write_eof()


class BlackholeProxy:
    """Relays 127.0.0.1:<port> to `target`, or swallows: reads every byte and answers none.

    `blackhole()` swallows on every connection, open or new, as a dead load balancer or a
    partition that drops packets does; `restore()` relays new connections again, while the
    ones that lost bytes stay dead (their HTTP exchange is broken), so only a client that
    gives up on them and connects afresh gets through. With no target it only swallows.
    """

    def __init__(self, target: tuple[str, int] | None = None) -> None:
        self._target = target
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._black = target is None
        self._open: set[_Link] = set()
        self.swallowed: list[bytearray] = []  # what each swallowed connection sent so far

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def blackhole(self) -> None:
        self._black = True
        for link in self._open:
            link.dead = True

    def restore(self) -> None:
        self._black = self._target is None

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self._black or self._target is None:
                received = bytearray()
                self.swallowed.append(received)
                await _swallow(reader, received)
                return
            link = _Link()
            self._open.add(link)
            try:
                await self._relay(reader, writer, link)
            finally:
                self._open.discard(link)
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _relay(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link
    ) -> None:
        assert self._target is not None
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        try:
            await asyncio.gather(
                _pipe_unless_dead(reader, up_writer, link),
                _pipe_unless_dead(up_reader, writer, link),
            )
        finally:
            up_writer.close()


class _Link:
    """One relayed connection; once dead, bytes in both directions are dropped."""

    dead = False


async def _swallow(reader: asyncio.StreamReader, received: bytearray) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            received += data


async def _pipe_unless_dead(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link
) -> None:
    with contextlib.suppress(ConnectionError):
        while data := await reader.read(65536):
            if not link.dead:
                writer.write(data)
                await writer.drain()
    with contextlib.suppress(OSError):
        writer.write_eof()
