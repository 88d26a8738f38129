"""How Pusher REST calls leave this process: one kept-alive httpx client on the event loop.

Requests are built and signed by the `pusher` package (its `Request`: body, `body_md5`,
`auth_timestamp` and the HMAC-SHA256 `auth_signature`), through its documented extension
point, a backend class whose `send_request` it calls; this backend sends them over a shared
`httpx.AsyncClient`, so connections (and TLS sessions, against Pusher) are reused and no
thread is involved. Webhook validation and channel auth use the same package without HTTP.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx
import pusher
from pusher.http import process_response

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


class HttpxBackend:
    """A `pusher` backend: the package's signed request, sent with a shared httpx client."""

    def __init__(self, client: object, *, http: httpx.AsyncClient) -> None:
        del client
        self._http = http

    async def send_request(self, request: Any) -> Any:
        response = await self._http.request(
            request.method, request.url, headers=request.headers, content=request.body
        )
        return process_response(response.status_code, response.text)


def pusher_client(settings: Settings, backend: type = _NoHttp, **options: Any) -> Any:
    """A `pusher.Pusher` for these settings; ConfigError naming what is missing or bad."""
    secret = settings.pusher_secret.get_secret_value() if settings.pusher_secret else None
    if not (settings.pusher_app_id and settings.pusher_key and secret):
        raise ConfigError("PUSHER_APP_ID, PUSHER_KEY and PUSHER_SECRET must all be set")
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
            backend=backend,
            **options,
        )
    except (TypeError, ValueError) as err:
        raise ConfigError(f"bad PUSHER_* settings: {err}") from err


class HttpxTransport:
    """`trigger_batch` over one httpx client: up to `connections` kept-alive connections."""

    def __init__(self, settings: Settings, connections: int) -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        # Every phase (connect, write, read, pool wait) is bounded by PUSHER_TIMEOUT_S.
        self._http = httpx.AsyncClient(
            limits=limits, timeout=httpx.Timeout(settings.pusher_timeout_s)
        )
        self._client = pusher_client(settings, HttpxBackend, http=self._http)

    async def trigger_batch(self, batch: list[Event]) -> None:
        # already_encoded: the data strings go out exactly as payload_json made them.
        await self._client.trigger_batch(batch, already_encoded=True)

    async def aclose(self) -> None:
        await self._http.aclose()
