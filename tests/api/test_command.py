"""`travis-logs api` as `travis-logs dev` and containers run it: serve, then stop on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import httpx
from pydantic import SecretStr

from tests.helpers import assert_eventually, free_port
from travis_logs.settings import Settings


def environment(settings: Settings) -> dict[str, str]:
    """The environment that makes Settings() in a child process equal `settings`."""
    env = dict(os.environ)
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


async def test_api_command_serves_and_stops_cleanly_on_sigterm(api_settings: Settings) -> None:
    """The command answers on PORT and exits 0 on SIGTERM after closing its clients."""
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workers.cli",
        "api",
        "--host",
        "127.0.0.1",
        env=environment(api_settings.model_copy(update={"port": port})),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:

        async def answers() -> None:
            try:
                async with httpx.AsyncClient() as c:
                    response = await c.get(f"http://127.0.0.1:{port}/uptime")
            except httpx.TransportError as err:
                raise AssertionError(f"not up yet: {err}") from None
            assert response.status_code == 200

        await assert_eventually(answers, timeout=30)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 15) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.stderr is not None
    errors = (await process.stderr.read()).decode()
    assert "Traceback" not in errors, errors
