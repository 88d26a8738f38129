"""`Subscription` against the real broker: deliveries reach the callback in order, from the
channel's frame reader, and other consumers of the same channel keep aiormq's own path."""

from __future__ import annotations

import aio_pika
from aiormq.abc import DeliveredMessage

from ingest.subscription import Subscription
from tests.helpers import assert_eventually
from tests.ingest.ingest_support import broker, part, publish
from travis_logs.settings import Settings


async def test_deliveries_reach_the_callback_in_order_and_other_consumers_still_get_theirs(
    settings: Settings,
) -> None:
    async with broker(settings) as (channel, topology):
        connection = await aio_pika.connect_robust(str(settings.rabbitmq_url))
        async with connection:
            consuming = await connection.channel()
            await consuming.set_qos(prefetch_count=100)
            seen: list[DeliveredMessage] = []
            subscription = Subscription(consuming, settings.amqp_queue, seen.append)
            await subscription.start()
            underlay = await consuming.get_underlay_channel()
            # The pinned aiormq has what the direct path needs: it replaced the handler.
            assert "_on_deliver_frame" in vars(underlay)

            # A second queue consumed through aiormq's ordinary callback, on the same channel.
            other = await consuming.declare_queue(f"{settings.amqp_queue}.other", exclusive=True)
            others: list[bytes] = []

            async def on_other(message: DeliveredMessage) -> None:
                others.append(message.body)

            await underlay.basic_consume(other.name, on_other, no_ack=True)

            bodies = [part(7, n, f"line {n}\n") for n in range(1, 51)]
            await publish(topology, settings, bodies)
            await channel.default_exchange.publish(aio_pika.Message(b"x"), other.name)

            async def all_seen() -> None:
                assert [m.body for m in seen] == bodies
                assert others == [b"x"]

            await assert_eventually(all_seen)
            await underlay.basic_ack(seen[-1].delivery_tag or 0, multiple=True)
            await subscription.cancel()
