"""Running the local Pusher-protocol server and real pusher-js clients from tests and bench."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pusher
import uvicorn
from pydantic import SecretStr
from starlette.types import ASGIApp
from websockets.asyncio.client import ClientConnection, connect

from tests.helpers import free_port
from travis_logs.localpusher.app import ServerConfig
from travis_logs.localpusher.signing import AppCredentials
from travis_logs.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
NODE_CLIENT = ROOT / "tests" / "js" / "pusher_client.mjs"
APP = AppCredentials(app_id="4242", key="test-key", secret="test-secret")


def ensure_pusher_js() -> None:
    """Install pusher-js from package.json when node_modules lacks it (as `make install` does)."""
    if not (ROOT / "node_modules" / "pusher-js" / "package.json").exists():
        npm = shutil.which("npm")
        assert npm, "npm is needed for the pusher-js tests"
        subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=ROOT, check=True)


def rest_client(port: int, secret: str = APP.secret) -> pusher.Pusher:
    """The `pusher` package's own client (requests backend) for the server on `port`."""
    return pusher.Pusher(
        app_id=APP.app_id, key=APP.key, secret=secret, ssl=False, host="127.0.0.1", port=port
    )


def pusher_settings(base: Settings, port: int, **overrides: Any) -> Settings:
    """Settings whose Pusher client talks to a local server on `port`."""
    values: dict[str, Any] = {
        "pusher_app_id": APP.app_id,
        "pusher_key": APP.key,
        "pusher_secret": SecretStr(APP.secret),
        "pusher_host": "127.0.0.1",
        "pusher_port": port,
        "pusher_ssl": False,
        "pusher_timeout_s": 2.0,
    }
    return base.model_copy(update={**values, **overrides})


@contextlib.asynccontextmanager
async def serve(app: ASGIApp, port: int | None = None) -> AsyncIterator[int]:
    """Run an ASGI app with uvicorn in this event loop; yields its port."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        await task


def server_config(webhook_url: str | None = None, client_queue: int = 1000) -> ServerConfig:
    return ServerConfig(app=APP, webhook_url=webhook_url, client_queue=client_queue)


def socket_url(port: int, key: str = APP.key, protocol: str | None = "7") -> str:
    query = f"?protocol={protocol}&client=test&version=1" if protocol else "?client=test"
    return f"ws://127.0.0.1:{port}/app/{key}{query}"


@contextlib.asynccontextmanager
async def websocket(port: int, **options: Any) -> AsyncIterator[ClientConnection]:
    """A plain WebSocket client past `pusher:connection_established`."""
    async with connect(socket_url(port), **options) as ws:
        established = json.loads(await ws.recv())
        assert established["event"] == "pusher:connection_established"
        yield ws


async def subscribe(ws: ClientConnection, channel: str) -> None:
    await ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": channel}}))
    reply = json.loads(await ws.recv())
    assert reply == {
        "event": "pusher_internal:subscription_succeeded",
        "channel": channel,
        "data": "{}",
    }


class PusherJs:
    """A node process running pusher-js clients; its JSON lines are collected as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self.lines: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    @contextlib.asynccontextmanager
    async def run(cls, port: int, channels: list[str], **options: Any) -> AsyncIterator[PusherJs]:
        config = {"key": APP.key, "port": port, "channels": channels, **options}
        process = await asyncio.create_subprocess_exec(
            "node",
            str(NODE_CLIENT),
            json.dumps(config),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "NODE_PATH": str(ROOT / "node_modules")},
            limit=1 << 24,
        )
        client = cls(process)
        try:
            yield client
        finally:
            await client.close()

    async def _read(self) -> None:
        assert self._process.stdout is not None
        try:
            async for line in self._process.stdout:
                self.lines.append(json.loads(line))
                self._changed.set()
        finally:
            self._changed.set()

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [line for line in self.lines if line["kind"] == kind]

    async def wait_for(
        self, check: Callable[[PusherJs], bool], timeout: float = 10
    ) -> list[dict[str, Any]]:
        """Wait until `check(self)` holds; its lines so far are returned."""
        async with asyncio.timeout(timeout):
            while True:
                self._changed.clear()
                if check(self):
                    return self.lines
                if self._reader.done():
                    raise AssertionError(f"pusher-js exited early; output: {self.lines}")
                await self._changed.wait()

    async def ready(self, timeout: float = 15) -> None:
        await self.wait_for(lambda c: bool(c.of_kind("ready")), timeout)

    async def close(self) -> None:
        if self._process.returncode is None:
            self._process.terminate()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._process.wait(), 5)
        if self._process.returncode is None:
            self._process.kill()
            await self._process.wait()
        await self._reader
