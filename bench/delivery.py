"""What the direct delivery of `ingest/subscription.py` saves per message, alone.

Fills a queue with N messages of about 1.6 KB, then consumes them through `Subscription`
with the frame-reader callback (direct) and through aiormq's public path (a task per
delivery), acking every 500 with one multiple ack as the ingest does; rounds alternate so
that others' load hits both alike. Prints this process's CPU per message for each, the
difference, and their ratio. The whole ingest's figure with and without is
`bench/ingest.py --compare-delivery`; this one has no PostgreSQL or Temporal noise in it.

Needs RabbitMQ (RABBITMQ_URL).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

import aio_pika
from aiormq.abc import DeliveredMessage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest.subscription import Subscription
from travis_logs.settings import Settings

BODY = b'{"id": 1, "log": "' + b"x" * 1600 + b'", "number": 1, "final": false}'
ACK_EVERY = 500


async def consume_all(
    connection: aio_pika.abc.AbstractRobustConnection, queue: str, count: int, direct: bool
) -> float:
    """CPU seconds of this process to take `count` messages from `queue`."""
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=2000)
    done = asyncio.Event()
    seen: list[DeliveredMessage] = []
    acks: set[asyncio.Task[None]] = set()

    def on_delivery(message: DeliveredMessage) -> None:
        seen.append(message)
        if len(seen) % ACK_EVERY == 0 or len(seen) == count:
            task = asyncio.create_task(ack(message))
            acks.add(task)
            task.add_done_callback(acks.discard)

    async def ack(message: DeliveredMessage) -> None:
        await message.channel.basic_ack(message.delivery_tag or 0, multiple=True)
        if len(seen) >= count:
            done.set()

    subscription = Subscription(channel, queue, on_delivery, direct=direct)
    cpu = time.process_time()
    await subscription.start()
    await done.wait()
    used = time.process_time() - cpu
    await subscription.cancel()
    await channel.close()
    return used


async def fill(channel: aio_pika.abc.AbstractChannel, queue: str, count: int) -> None:
    for _ in range(count):
        await channel.default_exchange.publish(aio_pika.Message(BODY), routing_key=queue)


async def main(args: argparse.Namespace) -> None:
    settings = Settings()
    connection = await aio_pika.connect_robust(str(settings.rabbitmq_url))
    async with connection:
        publisher = await connection.channel(publisher_confirms=True)
        queue = await publisher.declare_queue(f"bench.delivery-{uuid.uuid4().hex[:8]}")
        results: dict[bool, list[float]] = {True: [], False: []}
        try:
            for round_ in range(args.rounds):
                for direct in (True, False) if round_ % 2 == 0 else (False, True):
                    await fill(publisher, queue.name, args.messages)
                    cpu = await consume_all(connection, queue.name, args.messages, direct)
                    results[direct].append(cpu / args.messages * 1e6)
        finally:
            await queue.delete(if_unused=False, if_empty=False)
    frame_us, task_us = statistics.median(results[True]), statistics.median(results[False])
    print(f"{args.messages} messages, median of {args.rounds} rounds each (CPU of this process)")
    print(f"  direct (frame reader): {frame_us:6.1f} us/message")
    print(f"  task per delivery:     {task_us:6.1f} us/message")
    print(f"  saved: {task_us - frame_us:.1f} us/message; direct/task {frame_us / task_us:.2f}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000, help="per round (20,000)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each (5)")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
