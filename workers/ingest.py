"""`travis-logs ingest`: log parts from RabbitMQ into PostgreSQL, Pusher and log workflows."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging

import aio_pika
from aio_pika import RobustConnection
from prometheus_client import start_http_server

from ingest.backlog import watch_backlog
from ingest.consumer import BatchConsumer
from ingest.intake import Intake, assemble
from ingest.outbox import SignalPump, SignalSender
from ingest.paced_reads import PacedTransportFactory, paced
from ingest.subscription import Subscription
from ingest.topology import dead_letter_names, declare
from travis_logs.checks import check_postgres, check_rabbitmq
from travis_logs.db import create_pool
from travis_logs.migrate import require_current
from travis_logs.pusher.check import check_pusher
from travis_logs.pusher.occupancy import OccupancyCache, OccupancyStore
from travis_logs.pusher.publisher import build_publisher
from travis_logs.settings import Settings
from travis_logs.temporal import connect
from workers.preflight import check_namespace, check_temporal
from workers.signals import run_until_stopped

# How long a stop waits for the batch in hand (its store and signals) before giving up on it.
FLUSH_TIMEOUT_S = 30
# How often the backlog gauges read the queue depths.
BACKLOG_PERIOD_S = 15
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # everything comes from Settings


def main(args: argparse.Namespace, settings: Settings) -> int:
    asyncio.run(_main(settings))
    return 0


async def _main(settings: Settings) -> None:
    if settings.ingest_metrics_port:
        start_http_server(settings.ingest_metrics_port, addr=settings.metrics_host)
    await run_until_stopped(lambda stop: run(settings, stop))


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Build the clients, consume until `stop` is set, then shut down cleanly."""
    await check_postgres(str(settings.database_url))
    await require_current(str(settings.database_url))
    await check_rabbitmq(str(settings.rabbitmq_url))
    await check_temporal(settings)
    await check_pusher(settings)
    async with contextlib.AsyncExitStack() as stack:
        pool = await create_pool(str(settings.database_url))
        stack.push_async_callback(pool.close)
        client = await connect(settings)
        # Its signal-with-start sets JobId and LogState: without them every start is refused.
        await check_namespace(client)
        occupancy = None
        if settings.pusher_existence_check:
            occupancy = OccupancyCache(OccupancyStore(pool), settings.pusher_occupancy_ttl_s)
        publisher = build_publisher(settings, occupancy)
        stack.push_async_callback(publisher.aclose)
        await consume(assemble(pool, client, settings, publisher), settings, stop)


async def consume(intake: Intake, settings: Settings, stop: asyncio.Event) -> None:
    """Consume `amqp_queue` into `intake` until `stop`; then flush the batch in hand and ack."""
    factory = PacedTransportFactory(settings.ingest_read_tick_ms / 1000)
    connection = await aio_pika.connect_robust(
        str(settings.rabbitmq_url), connection_class=paced(RobustConnection, factory)
    )
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.set_qos(prefetch_count=settings.amqp_prefetch)
        topology = await declare(channel, settings)
        pump = SignalPump(intake.signals, settings.ingest_signals_in_flight)
        consumer = BatchConsumer(intake.parts, topology.dead_exchange, settings, pump)
        batches = asyncio.create_task(consumer.run())
        sweeper = asyncio.create_task(sweep_outbox(intake.signals, settings.ingest_outbox_stale_s))
        redactions = asyncio.create_task(intake.redacted.watch(intake.pool))
        # Its own channel: a passive declare of a missing queue closes the channel.
        backlog = asyncio.create_task(
            watch_backlog(await connection.channel(), _queues(settings), BACKLOG_PERIOD_S)
        )
        subscription = Subscription(
            channel,
            settings.amqp_queue,
            consumer.on_delivery,
            direct=settings.ingest_direct_delivery,
        )
        try:
            await subscription.start()
            log.info("ingest consuming %s", settings.amqp_queue)
            await _until_stopped(stop, batches, subscription.cancelled_by_broker)
            log.info("ingest stopping: finishing the batch in hand")
            await subscription.cancel()
            consumer.close()
            loop = asyncio.get_running_loop()
            flushed_by = loop.time() + FLUSH_TIMEOUT_S  # one budget for the batch and signals
            await _finish(batches)
            await pump.close(max(0.0, flushed_by - loop.time()))
        finally:
            await pump.close(0)  # after a failure: what is on its way stays in the outbox
            for task in (sweeper, batches, backlog, redactions):
                task.cancel()
            await asyncio.gather(sweeper, batches, backlog, redactions, return_exceptions=True)
        log.info("ingest stopped after acking %d message(s)", consumer.acked)


def _queues(settings: Settings) -> tuple[str, str]:
    """The parts queue and its dead-letter queue, whose backlogs the gauges show."""
    return settings.amqp_queue, dead_letter_names(settings)[1]


async def _until_stopped(
    stop: asyncio.Event, batches: asyncio.Task[None], cancelled: asyncio.Event
) -> None:
    """Until `stop` is set; raises when the batch loop or the broker ended consuming first."""
    waits = {asyncio.create_task(stop.wait()), asyncio.create_task(cancelled.wait())}
    await asyncio.wait({batches, *waits}, return_when=asyncio.FIRST_COMPLETED)
    for task in waits:
        task.cancel()
    if batches.done():
        batches.result()
        raise RuntimeError("the batch loop ended by itself")
    if cancelled.is_set():
        # The queue is gone (deleted, or its node failed): a restart declares it again.
        raise RuntimeError("the broker cancelled the consumer")


async def _finish(batches: asyncio.Task[None]) -> None:
    """Let the batch in hand finish; past FLUSH_TIMEOUT_S leave it to the broker (unacked)."""
    try:
        await asyncio.wait_for(batches, FLUSH_TIMEOUT_S)
    except TimeoutError:
        # Temporal or PostgreSQL is not answering. The unacked messages are redelivered and
        # signals already committed to the outbox are resent: stopping now loses nothing.
        log.warning("batch not finished after %d s; leaving it to the broker", FLUSH_TIMEOUT_S)


async def sweep_outbox(signals: SignalSender, period_s: float) -> None:
    """Resend signals that a dead process left in the outbox, now and every `period_s`."""
    while True:
        try:
            await signals.resend_stale()
        except Exception as err:  # the next sweep tries again; ingest goes on meanwhile
            log.warning("outbox sweep failed: %r", err)
        await asyncio.sleep(period_s)
