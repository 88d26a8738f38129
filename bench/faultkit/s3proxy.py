"""A TCP proxy in front of moto that fails S3 the ways a network and a load balancer do.

- relay: bytes pass both ways;
- refuse: the port is closed and open connections are reset (connection refused);
- blackhole: every byte is read and dropped, on open connections and new ones, and a
  connection that lost bytes stays dead after recovery (its HTTP exchange is broken), as
  with a dead load balancer or a network partition that drops packets;
- corrupt: relays, but flips one byte in the body of a share of the PUT requests.

Requests from the client are framed (head, then Content-Length bytes of body), so that a
corruption hits an upload's body, never its headers.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass

RELAY, REFUSE, BLACKHOLE, CORRUPT = "relay", "refuse", "blackhole", "corrupt"


@dataclass(eq=False)  # hashed by identity: one per connection
class _Link:
    dead: bool = False


class FaultProxy:
    """127.0.0.1:`port` in front of `target`; `mode` switches what it does."""

    def __init__(self, port: int, target: tuple[str, int], seed: int = 0) -> None:
        self.port = port
        self._target = target
        self._rng = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._links: dict[_Link, list[asyncio.StreamWriter]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.mode = RELAY
        self.corrupt_share = 0.3
        self.corrupted = 0  # uploads whose body was damaged
        self.answered = 0  # bytes S3 sent back (heads and bodies) through the proxy

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def set_mode(self, mode: str) -> None:
        if mode == REFUSE:
            await self._close_listener()
            for writers in self._links.values():
                for writer in writers:
                    writer.transport.abort()
        elif self._server is None:
            await self.start()
        if mode == BLACKHOLE:
            for link in self._links:
                link.dead = True
        self.mode = mode

    async def close(self) -> None:
        # Abort the connections rather than cancel their handlers: each one then ends as a
        # client hanging up would, without asyncio reporting a cancelled callback.
        await self._close_listener()
        for writers in list(self._links.values()):
            for writer in writers:
                writer.transport.abort()
        await asyncio.wait(self._tasks, timeout=5) if self._tasks else None

    async def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        link = _Link(dead=self.mode == BLACKHOLE)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            self._tasks.discard(task)
            return
        self._links[link] = [writer, up_writer]
        try:
            await asyncio.gather(
                self._requests(reader, up_writer, link), self._answers(up_reader, writer, link)
            )
        except (ConnectionError, OSError):
            pass
        finally:
            self._links.pop(link, None)
            self._tasks.discard(task)
            for w in (writer, up_writer):
                w.transport.abort()

    async def _answers(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link
    ) -> None:
        while data := await reader.read(65536):
            if not link.dead:
                self.answered += len(data)
                writer.write(data)
                await writer.drain()
        writer.transport.abort()

    async def _requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link
    ) -> None:
        """Client to S3, one HTTP request at a time: head, then Content-Length body bytes."""
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                return
            length = _content_length(head)
            flip = self._flip_at(head, length)
            body = await reader.readexactly(length) if length else b""
            if flip >= 0:
                body = body[:flip] + bytes([body[flip] ^ 0x01]) + body[flip + 1 :]
            if not link.dead:
                writer.write(head + body)
                await writer.drain()

    def _flip_at(self, head: bytes, length: int) -> int:
        """Where to damage this request's body; -1: not at all."""
        upload = head.startswith(b"PUT ") and length > 0
        if self.mode != CORRUPT or not upload or self._rng.random() >= self.corrupt_share:
            return -1
        self.corrupted += 1
        return self._rng.randrange(length)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            with contextlib.suppress(ValueError):
                return int(value.strip())
    return 0
