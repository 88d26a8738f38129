"""The AMQP names travis-worker publishes to, and the dead-letter pair beside them (DESIGN §2)."""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from travis_logs.settings import Settings

# The header a dead-lettered message carries its reason in.
REASON_HEADER = "x-death-reason"


@dataclass(frozen=True)
class Topology:
    """The declared exchange and queue of log parts, and where invalid ones go."""

    exchange: AbstractExchange
    queue: AbstractQueue
    dead_exchange: AbstractExchange
    dead_queue: AbstractQueue


def dead_letter_names(settings: Settings) -> tuple[str, str]:
    """The dead-letter exchange and queue: `<exchange>.dead` and `<queue>.dead`."""
    return f"{settings.amqp_exchange}.dead", f"{settings.amqp_queue}.dead"


async def declare(channel: AbstractChannel, settings: Settings) -> Topology:
    """Declare (idempotently) what ingest consumes from and dead-letters to."""
    exchange = await channel.declare_exchange(
        settings.amqp_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    # No queue arguments: travis-worker declares the same queue plainly, and a mismatch in
    # arguments would make one of the two declarations fail.
    queue = await channel.declare_queue(settings.amqp_queue, durable=True)
    await queue.bind(exchange, settings.amqp_routing_key)
    dead_exchange_name, dead_queue_name = dead_letter_names(settings)
    dead_exchange = await channel.declare_exchange(
        dead_exchange_name, aio_pika.ExchangeType.DIRECT, durable=True
    )
    dead_queue = await channel.declare_queue(dead_queue_name, durable=True)
    await dead_queue.bind(dead_exchange, settings.amqp_queue)
    return Topology(exchange, queue, dead_exchange, dead_queue)
