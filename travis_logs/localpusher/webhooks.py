"""channel_occupied / channel_vacated webhooks, signed and retried like Pusher's."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import httpx
from stamina import retry_context

from travis_logs.localpusher.signing import AppCredentials, webhook_signature

log = logging.getLogger(__name__)

# Events sent in one webhook at most, and attempts per webhook before it is dropped.
_PER_WEBHOOK = 100
_ATTEMPTS = 5


class WebhookSender:
    """Posts existence events in the order they happened, one webhook at a time."""

    def __init__(self, app: AppCredentials, url: str | None, client: httpx.AsyncClient) -> None:
        self._app = app
        self._url = url
        self._client = client
        self._queue: asyncio.Queue[dict[str, str]] = asyncio.Queue(10_000)

    def notify(self, channel: str, occupied: bool) -> None:
        """Queue an event; the hub calls this and must never wait."""
        if self._url is None:
            return
        name = "channel_occupied" if occupied else "channel_vacated"
        try:
            self._queue.put_nowait({"name": name, "channel": channel})
        except asyncio.QueueFull:
            log.warning("webhook queue full: %s for %s not sent", name, channel)

    async def run(self) -> None:
        """Send queued events until cancelled."""
        while True:
            events = [await self._queue.get()]
            while len(events) < _PER_WEBHOOK and not self._queue.empty():
                events.append(self._queue.get_nowait())
            await self._post(events)

    async def _post(self, events: list[dict[str, str]]) -> None:
        assert self._url is not None  # nothing is queued without a URL
        body = json.dumps({"time_ms": int(time.time() * 1000), "events": events}).encode()
        headers = {
            "Content-Type": "application/json",
            "X-Pusher-Key": self._app.key,
            "X-Pusher-Signature": webhook_signature(self._app, body),
        }
        try:
            async for attempt in retry_context(
                on=httpx.HTTPError, attempts=_ATTEMPTS, timeout=None, wait_max=5.0, wait_jitter=0.1
            ):
                with attempt:
                    response = await self._client.post(self._url, content=body, headers=headers)
                    if response.status_code >= 500:
                        response.raise_for_status()
        except httpx.HTTPError as err:
            log.warning("webhook dropped after %d attempts (%r): %s", _ATTEMPTS, err, events)
            return
        if response.is_error:
            log.warning("webhook refused (%d): %s", response.status_code, events)
