"""The simulator's jobs on the private RabbitMQ node, published as travis-worker does, retrying.

travis-worker keeps a job's parts until the broker confirms them: a publish that fails
(the node is down or restarting) is retried on a new connection until it is confirmed.
A retried batch may have reached the queue already; the system must take the duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import aio_pika
from aio_pika.abc import AbstractConnection

from travis_logs.settings import Settings
from travis_logs.simulator.messages import Message
from travis_logs.simulator.sinks import AmqpSink
from workers.simulate import declare_like_travis_worker


class RetryingSink:
    """An AmqpSink that reconnects and sends the batch again until the broker confirms it."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._connection: AbstractConnection | None = None
        self._sink: AmqpSink | None = None
        self._lock = asyncio.Lock()
        self.retries = 0

    async def _connected(self) -> AmqpSink:
        async with self._lock:
            if self._sink is None:
                self._connection = await aio_pika.connect(self._url, timeout=5)
                channel = await self._connection.channel(publisher_confirms=True)
                settings = Settings(_env_file=None)
                exchange = await declare_like_travis_worker(channel, settings)
                self._sink = AmqpSink(exchange, settings.amqp_routing_key)
            return self._sink

    async def _drop(self, broken: AmqpSink) -> None:
        async with self._lock:
            if self._sink is broken:
                self._sink = None
                if self._connection is not None:
                    with contextlib.suppress(Exception):
                        await self._connection.close()

    async def send(self, messages: Sequence[Message]) -> None:
        while True:
            sink: AmqpSink | None = None
            try:
                sink = await self._connected()
                await asyncio.wait_for(sink.send(messages), timeout=10)
                return
            except Exception:  # the broker went away mid-publish: send it all again
                self.retries += 1
                if sink is not None:
                    await self._drop(sink)
                await asyncio.sleep(0.5)

    async def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
