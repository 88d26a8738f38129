"""Services the ingest failure tests may break without disturbing anyone else's.

A private PostgreSQL cluster (stopped and started by the test), a TCP proxy that can stall
a connection mid-stream, and `travis-logs ingest` as a subprocess to SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from tests.helpers import assert_eventually, free_port
from travis_logs.binaries import executable


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"no PostgreSQL server binaries ({name}) under /usr/lib/postgresql")
    return found[-1]


class PrivatePostgres:
    """A throwaway cluster in a temporary folder, run as the `postgres` OS user when root."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.port = free_port()

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/travis_logs"

    def _run(self, *args: str) -> None:
        command = list(args)
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres")
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            _pg_bin("pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-w",
            "-l",
            str(self.folder / "log"),
            "start",
        )

    def stop(self) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started private cluster, stopped and deleted afterwards."""
    with tempfile.TemporaryDirectory(prefix="travis-logs-pg-") as folder:
        os.chmod(folder, 0o755)
        cluster = PrivatePostgres(Path(folder))
        cluster.init()
        cluster.start()
        try:
            yield cluster
        finally:
            with contextlib.suppress(subprocess.CalledProcessError):
                cluster.stop()


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
