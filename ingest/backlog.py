"""The broker backlog as gauges: messages waiting in the parts queue and its dead-letter queue.

The alert rules watch these for a growing backlog (ingest too slow or stopped) and a growing
dead-letter queue (travis-worker sending what cannot be parsed). A passive declare reads the
count without changing the queue. It goes to the underlying channel because aio-pika's
`declare_queue` answers a repeated declare from what the first one returned.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from aio_pika.abc import AbstractChannel
from prometheus_client import Gauge

log = logging.getLogger(__name__)

QUEUE_MESSAGES = Gauge(
    "travis_logs_broker_queue_messages",
    "Messages ready in a queue of ingest (the parts queue and its dead-letter queue).",
    ["queue"],
)


async def read_backlog(channel: AbstractChannel, queues: Sequence[str]) -> dict[str, int]:
    """Set the gauge for each queue; returns the counts read."""
    counts = {}
    raw = await channel.get_underlay_channel()
    for name in queues:
        declared = await raw.queue_declare(name, passive=True)
        count = declared.message_count or 0
        QUEUE_MESSAGES.labels(name).set(count)
        counts[name] = count
    return counts


async def watch_backlog(channel: AbstractChannel, queues: Sequence[str], period_s: float) -> None:
    """Read the backlog now and every `period_s` until cancelled."""
    while True:
        try:
            await read_backlog(channel, queues)
        except Exception as err:  # a gauge a little stale is better than a stopped ingest
            log.warning("could not read the queue backlog: %r", err)
        await asyncio.sleep(period_s)
