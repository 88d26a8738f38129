"""Headless Chromium driven over the Chrome DevTools Protocol (websockets, no extra driver)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.helpers import assert_eventually, free_port

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1100,800",
]


def executable() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One browser tab: navigate, evaluate JavaScript, take screenshots."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._loaded = asyncio.Event()
        self.console: list[str] = []
        self.browser_pid: int | None = None
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self._ws:
            message = json.loads(raw)
            if "id" in message and message["id"] in self._pending:
                self._pending.pop(message["id"]).set_result(message)
            elif message.get("method") == "Page.loadEventFired":
                self._loaded.set()
            elif message.get("method") == "Runtime.exceptionThrown":
                self.console.append(json.dumps(message["params"]["exceptionDetails"])[:500])

    async def send(self, method: str, wait_s: float = 30, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        await self._ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        reply = await asyncio.wait_for(future, wait_s)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        result: dict[str, Any] = reply["result"]
        return result

    async def goto(self, url: str) -> None:
        self._loaded.clear()
        await self.send("Page.navigate", url=url)
        await asyncio.wait_for(self._loaded.wait(), 30)

    async def eval(self, expression: str, timeout: float = 30) -> Any:
        """The value of a JavaScript expression (promises are awaited)."""
        reply = await self.send(
            "Runtime.evaluate",
            timeout,
            expression=expression,
            returnByValue=True,
            awaitPromise=True,
        )
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 20) -> Any:
        """Poll until the expression is truthy; its value."""

        async def truthy() -> Any:
            value = await self.eval(expression)
            assert value, f"still false: {expression} (errors: {self.console})"
            return value

        return await assert_eventually(truthy, timeout=timeout, interval=0.1)

    async def screenshot(self, path: Path) -> None:
        data = (await self.send("Page.captureScreenshot", format="png"))["data"]
        await asyncio.to_thread(_save, path, base64.b64decode(data))

    async def close(self) -> None:
        await self._ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)


async def _stop(process: asyncio.subprocess.Process) -> None:
    """End the browser and the helpers it started (its process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), 10)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


def _save(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


async def _page_socket(port: int) -> str:
    async def listed() -> str:
        async with httpx.AsyncClient() as http:
            targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
        pages = [t for t in targets if t["type"] == "page"]
        assert pages
        url: str = pages[0]["webSocketDebuggerUrl"]
        return url

    async def answering() -> str:
        try:
            return await listed()
        except httpx.TransportError as err:
            raise AssertionError(f"DevTools not up yet: {err}") from None

    return await assert_eventually(answering, timeout=30, interval=0.1)


@contextlib.asynccontextmanager
async def open_page(binary: str) -> AsyncIterator[Page]:
    """Start Chromium with a throwaway profile and yield its first tab."""
    port = free_port()
    # Chromium's helper processes may still touch the profile while it is being removed.
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as profile:
        process = await asyncio.create_subprocess_exec(
            binary,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--remote-debugging-port={port}",
            "about:blank",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # its own process group: helpers stop with it
        )
        try:
            async with connect(await _page_socket(port), max_size=1 << 26) as ws:
                page = Page(ws)
                page.browser_pid = process.pid  # its helpers share its session id
                await page.send("Page.enable")
                await page.send("Runtime.enable")
                yield page
                await page.close()
        finally:
            await _stop(process)
