"""The whole system on private services: two ingests, two workers, the API, the Pusher server.

S3 is reached only through the fault proxy. The project's processes run as they do in
production, configured through the environment, and a supervisor loop restarts one that
exits (as systemd or Kubernetes would); the report counts those restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

import aioboto3

from bench.faultkit.s3proxy import FaultProxy
from bench.faultkit.services import (
    Child,
    Moto,
    PrivateRabbit,
    TemporalServer,
    free_port,
    wait_port,
)
from tests.private_postgres import PrivatePostgres
from travis_logs.migrate import migrate
from travis_logs.settings import Settings
from workers.devstack import register_search_attributes, wait_for_temporal

AUTH_TOKEN = "bench-token-0123456789abcdefghijklmnop"
BUCKET = "travis-logs-faults"
PROCESSES = ("pusher-server", "ingest-1", "ingest-2", "worker-1", "worker-2", "api")
AWS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}


class Stack:
    """Services, the S3 fault proxy and the processes, started and stopped together."""

    def __init__(self, folder: Path, lifecycle: dict[str, str]) -> None:
        self.folder = folder
        self.postgres = PrivatePostgres(folder / "postgres")
        self.rabbit = PrivateRabbit(folder / "rabbitmq")
        self.temporal = TemporalServer(folder)
        self.moto = Moto(folder)
        self.proxy = FaultProxy(free_port(), ("127.0.0.1", self.moto.port))
        self.api_port = free_port()
        self.pusher_port = free_port()
        self.lifecycle = lifecycle
        self.children: dict[str, Child] = {}
        self.restarted: list[str] = []  # processes that exited on their own, restarted
        self._paused: set[str] = set()  # killed on purpose: not restarted by the supervisor
        self._supervisor: asyncio.Task[None] | None = None

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy.port}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            **AWS,
            "DATABASE_URL": self.postgres.dsn,
            "RABBITMQ_URL": self.rabbit.url,
            "TEMPORAL_ADDRESS": self.temporal.address,
            "S3_ENDPOINT_URL": self.s3_url,
            "S3_BUCKET": BUCKET,
            "AUTH_TOKEN": AUTH_TOKEN,
            "PORT": str(self.api_port),
            "PUSHER_APP_ID": "1",
            "PUSHER_KEY": "bench-key",
            "PUSHER_SECRET": "bench-secret",
            "PUSHER_HOST": "127.0.0.1",
            "PUSHER_PORT": str(self.pusher_port),
            "PUSHER_SSL": "false",
            "DEV_PUSHER_PORT": str(self.pusher_port),
            **self.lifecycle,
        }

    async def start(self) -> None:
        os.environ.update(AWS)
        await asyncio.to_thread(self.postgres.init)
        await asyncio.to_thread(self.postgres.start)
        await migrate(self.postgres.dsn)
        await asyncio.gather(self.rabbit.start(), self.temporal.start(), self.moto.start())
        await self.proxy.start()
        await self._register_search_attributes()
        await self._create_bucket()
        for name in PROCESSES:
            self._child(name).start()
        await wait_port(self.api_port)
        self._supervisor = asyncio.create_task(self._supervise())

    def _child(self, name: str) -> Child:
        if name not in self.children:
            command = name.split("-")[0] if name != "pusher-server" else name
            argv = [sys.executable, "-m", "workers.cli", command]
            if command == "api":
                argv += ["--host", "127.0.0.1"]
            self.children[name] = Child(name, argv, self.folder / f"{name}.log", self.env())
        return self.children[name]

    async def _register_search_attributes(self) -> None:
        settings = Settings(_env_file=None, temporal_address=self.temporal.address)
        await register_search_attributes(await wait_for_temporal(settings, timeout=60))

    async def _create_bucket(self) -> None:
        async with aioboto3.Session().client(
            "s3", endpoint_url=self.moto.url, region_name="us-east-1"
        ) as s3:
            await s3.create_bucket(Bucket=BUCKET)

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(1)
            for name, child in self.children.items():
                if name not in self._paused and not child.running:
                    self.restarted.append(name)
                    child.start()

    def kill(self, *names: str) -> None:
        """SIGKILL project processes; they stay down until `revive`."""
        for name in names:
            self._paused.add(name)
            self.children[name].kill()

    def revive(self, *names: str) -> None:
        for name in names:
            self._paused.discard(name)
            if not self.children[name].running:
                self.children[name].start()

    async def stop(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._supervisor
        for child in self.children.values():
            await asyncio.to_thread(child.stop)
        await self.proxy.close()
        for service in (self.temporal.child, self.rabbit.child, self.moto.child):
            service.kill()
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.postgres.stop)
