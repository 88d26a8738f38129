"""How the `pusher` package's requests leave this process: a thread, or its asyncio backend.

The thread is the default, measured with `bench/live.py`: the package's asyncio backend
opens a new HTTP session, hence a new connection (and TLS handshake, against Pusher) for
every call, all on the caller's event loop. Through a proxy adding 20 ms of round trip it
sent about 900 events/s against 1,350 for kept-alive sessions in threads, and inside a
busy ingest process it made AMQP-to-browser latency worse; on loopback the two are close.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import pusher
from pusher.aiohttp import AsyncIOBackend

from travis_logs.errors import ConfigError
from travis_logs.settings import Settings

# One Pusher event as trigger_batch takes it: channel, name and the pre-serialised data.
Event = dict[str, str]


class Transport(Protocol):
    async def trigger_batch(self, batch: list[Event]) -> None: ...

    async def aclose(self) -> None: ...


class _NoHttp:
    """A backend for clients that only sign and verify (webhooks, channel auth)."""

    def __init__(self, client: object, **options: object) -> None:
        del client, options


def pusher_client(settings: Settings, backend: type | None = _NoHttp) -> Any:
    """A `pusher.Pusher` for these settings; ConfigError naming what is missing or bad."""
    secret = settings.pusher_secret.get_secret_value() if settings.pusher_secret else None
    if not (settings.pusher_app_id and settings.pusher_key and secret):
        raise ConfigError("PUSHER_APP_ID, PUSHER_KEY and PUSHER_SECRET must all be set")
    options: dict[str, Any] = {"backend": backend} if backend is not None else {}
    try:
        return pusher.Pusher(
            app_id=settings.pusher_app_id,
            key=settings.pusher_key,
            secret=secret,
            ssl=True if settings.pusher_ssl is None else settings.pusher_ssl,
            host=settings.pusher_host,
            port=settings.pusher_port,
            cluster=settings.pusher_cluster,
            timeout=settings.pusher_timeout_s,
            **options,
        )
    except (TypeError, ValueError) as err:
        raise ConfigError(f"bad PUSHER_* settings: {err}") from err


class ThreadTransport:
    """The package's requests backend in a worker thread: one kept-alive session per lane."""

    def __init__(self, settings: Settings, executor: ThreadPoolExecutor, owns: bool) -> None:
        self._client = pusher_client(settings, backend=None)
        self._executor = executor
        self._owns = owns

    @classmethod
    def pool(cls, settings: Settings, lanes: int) -> list[Transport]:
        """`lanes` transports sharing one executor with a thread each."""
        executor = ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="pusher")
        return [cls(settings, executor, owns=i == 0) for i in range(lanes)]

    async def trigger_batch(self, batch: list[Event]) -> None:
        # already_encoded: the data strings go out exactly as payload_json made them.
        call = functools.partial(self._client.trigger_batch, batch, already_encoded=True)
        await asyncio.get_running_loop().run_in_executor(self._executor, call)

    async def aclose(self) -> None:
        if self._owns:
            self._executor.shutdown(wait=False, cancel_futures=True)


class AsyncioTransport:
    """The package's own asyncio backend (`pusher.aiohttp.AsyncIOBackend`)."""

    def __init__(self, settings: Settings) -> None:
        self._client = pusher_client(settings, backend=AsyncIOBackend)

    async def trigger_batch(self, batch: list[Event]) -> None:
        await self._client.trigger_batch(batch, already_encoded=True)

    async def aclose(self) -> None:
        """Nothing to close: the backend opens and closes a session per call."""
