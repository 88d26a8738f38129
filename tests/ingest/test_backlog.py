"""The broker backlog gauges read a real queue's depth."""

from __future__ import annotations

import uuid

import aio_pika
from prometheus_client import REGISTRY

from ingest.backlog import read_backlog
from tests.helpers import assert_eventually


async def test_backlog_gauge_counts_ready_messages(amqp_url: str) -> None:
    """Three messages published, none consumed: the gauge says 3."""
    name = f"backlog-{uuid.uuid4().hex[:8]}"
    connection = await aio_pika.connect_robust(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(name, auto_delete=False)
        for i in range(3):
            await channel.default_exchange.publish(aio_pika.Message(str(i).encode()), name)

        async def three() -> None:
            assert await read_backlog(channel, [name]) == {name: 3}

        try:
            await assert_eventually(three)
        finally:
            await queue.delete(if_unused=False, if_empty=False)
    value = REGISTRY.get_sample_value("travis_logs_broker_queue_messages", {"queue": name})
    assert value == 3
