"""The broker check of /healthz: one kept connection, not a new one per call.

A load balancer or orchestrator may poll /healthz every second on every API process; opening
an AMQP connection each time would cost the broker a connection setup and a log line per
poll. The probe keeps one connection open and reports whether it still is. When it is down,
it tries again at most every HEALTH_BROKER_RETRY_S, answering the last error in between.
"""

from __future__ import annotations

import asyncio
import time

import aio_pika
from yarl import URL

from travis_logs.db import redact

CONNECT_TIMEOUT_S = 2.5


class BrokerProbe:
    """Whether RabbitMQ at `url` is reachable, over a connection kept between calls."""

    def __init__(self, url: str, retry_s: float) -> None:
        self._url = url
        self._retry_s = retry_s
        self._connection: aio_pika.Connection | None = None
        self._failed_at: float | None = None
        self._error = ""
        self._lock = asyncio.Lock()
        self.attempts = 0  # connections tried: what the retry interval bounds

    def _is_open(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    async def check(self) -> None:
        """Return when the connection is up; raise ConnectionError (no password) when not."""
        if self._is_open():
            return
        async with self._lock:  # concurrent polls share one attempt
            if self._is_open():
                return
            if self._failed_at is not None and time.monotonic() - self._failed_at < self._retry_s:
                raise ConnectionError(self._error)
            await self._connect()

    async def _connect(self) -> None:
        await self.aclose()
        self.attempts += 1
        connection = aio_pika.Connection(URL(self._url))
        try:
            await connection.connect(timeout=CONNECT_TIMEOUT_S)
        except Exception as err:  # its message may carry the password of the URL
            await connection.close()  # an unclosed Connection warns when it is collected
            self._failed_at, self._error = (
                time.monotonic(),
                f"{redact(self._url)}: {type(err).__name__}",
            )
            raise ConnectionError(self._error) from None
        self._connection, self._failed_at = connection, None

    async def aclose(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None
