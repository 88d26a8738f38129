"""Services the ingest failure tests may break without disturbing anyone else's.

A TCP proxy that can stall a connection mid-stream, and `travis-logs ingest` as a subprocess
to SIGKILL. The private PostgreSQL cluster is tests/private_postgres.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from tests.helpers import assert_eventually, free_port
from travis_logs.binaries import executable


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; `stall()` stops moving bytes, `resume()` again."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    def stall(self) -> None:
        self._flowing.clear()

    def resume(self) -> None:
        self._flowing.set()

    def cut(self) -> None:
        """Drop every open connection, as a broker restart or a network failure would."""
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._pipes:
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers |= {writer, up_writer}
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(src, dst))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                await self._flowing.wait()
                dst.write(data)
                await dst.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            dst.close()


@contextlib.asynccontextmanager
async def tcp_proxy(target: str) -> AsyncIterator[TcpProxy]:
    host, _, port = target.rpartition(":")
    proxy = TcpProxy(host, int(port))
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()


class IngestProcess:
    """`travis-logs ingest` as a child process with its output in a file."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.output = folder / f"ingest-{free_port()}.log"
        with self.output.open("w") as out:
            self.process = subprocess.Popen(
                [executable("travis-logs"), "ingest"], env=env, stdout=out, stderr=subprocess.STDOUT
            )

    def text(self) -> str:
        return self.output.read_text()

    async def consuming(self) -> None:
        async def check() -> None:
            assert self.process.poll() is None, self.text()
            assert "ingest consuming" in self.text()

        await assert_eventually(check, timeout=30)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    async def terminate(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.process.wait, 30)


@contextlib.contextmanager
def ingest_process(env: dict[str, str], folder: Path) -> Iterator[IngestProcess]:
    """An ingest subprocess, killed at the end if the test left it running."""
    ingest = IngestProcess(env, folder)
    try:
        yield ingest
    finally:
        if ingest.process.poll() is None:
            ingest.kill()
