"""Private services and processes for the fault rounds, each killed only by its own id.

Everything listens on 127.0.0.1 on ports of its own: a PostgreSQL cluster made by initdb, a
second RabbitMQ node, a Temporal dev server on a SQLite file (so that a SIGKILLed server
restarts with its workflows) and moto. Each child runs in a session of its own, so that
killing it by its pid's process group takes its helpers (RabbitMQ's erl_child_setup) too.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
from pathlib import Path

from travis_logs.binaries import executable
from travis_logs.checks import port_is_free


def free_port(avoid: set[int] | None = None) -> int:
    """A port nobody listens on now (and, for RabbitMQ, whose +20000 twin is free too)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        if port not in (avoid or set()) and port_is_free(port):
            return port


async def wait_port(port: int, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(
                    f"nothing listens on 127.0.0.1:{port} after {timeout:.0f} s"
                ) from None
            await asyncio.sleep(0.2)
            continue
        writer.close()
        return


class Child:
    """One process the bench started, in a session of its own; output in a log file."""

    def __init__(
        self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name, self.argv, self.log, self.env = name, argv, log, env
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flush, as a crash or the OOM killer does."""
        self._signal(signal.SIGKILL)

    def stop(self, grace: float = 15) -> None:
        self._signal(signal.SIGTERM)
        if self.process is None:
            return
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()

    def _signal(self, signum: int) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signum)  # the group this child leads: its own helpers
        except ProcessLookupError:
            return
        if signum == signal.SIGKILL:
            self.process.wait(10)


class PrivateRabbit:
    """A second RabbitMQ node with its own name, ports and data folder (no plugins)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.dist_port = free_port({self.port})
        self.node = f"bench{self.port}@localhost"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "plugins").write_text("[].\n")
        (folder / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\nloopback_users = none\n"
        )
        env = {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(folder / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(folder / "plugins"),
            "RABBITMQ_CONFIG_FILE": str(folder / "rabbitmq"),
            "RABBITMQ_PID_FILE": str(folder / "pid"),
            # The Erlang distribution listener too binds loopback only.
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }
        server = "/usr/lib/rabbitmq/bin/rabbitmq-server"
        argv = [server if os.path.exists(server) else "rabbitmq-server"]
        self.child = Child("rabbitmq", argv, folder / "out.log", env)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    async def start(self) -> None:
        self.child.start()
        await wait_port(self.port, timeout=90)


class TemporalServer:
    """The dev server on a SQLite file: a SIGKILLed one restarts with its history."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        ui = free_port({self.port})
        argv = [
            executable("temporal"), "server", "start-dev", "--ip", "127.0.0.1",
            "--port", str(self.port), "--ui-port", str(ui),
            "--db-filename", str(folder / "temporal.db"),
            "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
            "--ui-disable-news-fetch", "--log-level", "error",
        ]  # fmt: skip
        self.child = Child("temporal", argv, folder / "temporal.log")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.child.start()
        await wait_port(self.port)


class Moto:
    """moto's S3 server; it keeps objects in memory, so it is the one service never killed."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        argv = [executable("moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]
        self.child = Child("moto", argv, folder / "moto.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.child.start()
        await wait_port(self.port)
