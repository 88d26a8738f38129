"""Helpers of the ingest tests: publishing parts, reading what was stored and signalled."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
import asyncpg
from aio_pika.abc import AbstractChannel
from prometheus_client import REGISTRY
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError

from ingest.intake import Intake, assemble
from ingest.topology import Topology, declare
from tests.helpers import assert_eventually
from travis_logs.pusher.publisher import PusherPublisher, build_publisher
from travis_logs.settings import Settings
from workers.ingest import consume
from workflows.models import PartsSignal, workflow_id


def part(job_id: int, number: int | str, log: str = "", final: bool = False, **extra: Any) -> bytes:
    """travis-worker's message body for one part."""
    payload = {"id": job_id, "log": log, "number": number, "final": final, "uuid": "u", **extra}
    return json.dumps(payload).encode()


def job_parts(job_id: int, count: int) -> list[bytes]:
    """Parts 1..count of a job with distinct text, then an empty final part."""
    bodies = [part(job_id, n, f"line {n}\n") for n in range(1, count + 1)]
    return [*bodies, part(job_id, count + 1, "", final=True)]


@contextlib.asynccontextmanager
async def broker(settings: Settings) -> AsyncIterator[tuple[AbstractChannel, Topology]]:
    """A channel with the ingest topology declared, for publishing and inspecting queues."""
    connection = await aio_pika.connect(str(settings.rabbitmq_url))
    async with connection:
        # Without confirms a test publishes thousands of parts in a blink (and the broker still
        # persists them; nothing here depends on a confirm).
        channel = await connection.channel(publisher_confirms=False)
        yield channel, await declare(channel, settings)


async def publish(topology: Topology, settings: Settings, bodies: Iterable[bytes]) -> None:
    """Publish persistent messages as travis-worker does."""
    for body in bodies:
        message = aio_pika.Message(
            body, content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )
        await topology.exchange.publish(message, routing_key=settings.amqp_routing_key)


async def redeliver_some(settings: Settings, count: int) -> None:
    """Take `count` messages and die without acking them: the broker redelivers them."""
    connection = await aio_pika.connect(str(settings.rabbitmq_url))
    channel = await connection.channel()
    await channel.set_qos(prefetch_count=count)
    taken: list[object] = []

    async def take(message: object) -> None:
        taken.append(message)

    await (await channel.get_queue(settings.amqp_queue)).consume(take)

    async def all_taken() -> None:
        assert len(taken) == count

    await assert_eventually(all_taken)
    await connection.close()


def acked() -> float:
    """Messages the ingest of this process acked so far (its prometheus counter)."""
    return REGISTRY.get_sample_value("travis_logs_ingest_acked_total") or 0.0


async def queue_depth(channel: AbstractChannel, name: str) -> int:
    """Messages ready in a queue (unacked ones are not counted)."""
    declared = await channel.declare_queue(name, passive=True)
    count = declared.declaration_result.message_count
    assert count is not None
    return count


async def stored_parts(pool: asyncpg.Pool, job_id: int) -> list[tuple[int, str, bool]]:
    """(number, content, final) of a job's parts, in number order."""
    rows = await pool.fetch(
        "SELECT p.number, p.content, p.final FROM log_parts p JOIN logs l ON l.id = p.log_id"
        " WHERE l.job_id = $1 ORDER BY p.number, p.id",
        job_id,
    )
    return [(r["number"], r["content"], r["final"]) for r in rows]


async def wait_stored(
    pool: asyncpg.Pool, job_id: int, count: int, timeout: float = 20
) -> list[tuple[int, str, bool]]:
    """The job's parts once there are `count` of them."""

    async def check() -> list[tuple[int, str, bool]]:
        parts = await stored_parts(pool, job_id)
        assert len(parts) >= count, f"{len(parts)} of {count} parts stored"
        return parts

    return await assert_eventually(check, timeout=timeout)


async def signals_of(client: Client, job_id: int) -> list[PartsSignal]:
    """The PartsSignals in the history of the job's workflow (none when it does not exist)."""
    try:
        history = await client.get_workflow_handle(workflow_id(job_id)).fetch_history()
    except RPCError:
        return []
    found = []
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            payloads = event.workflow_execution_signaled_event_attributes.input.payloads
            found += await client.data_converter.decode(payloads, [PartsSignal])
    return found


async def history_length(client: Client, job_id: int) -> int:
    history = await client.get_workflow_handle(workflow_id(job_id)).fetch_history()
    return len(history.events)


def signalled_numbers(signals: Sequence[PartsSignal]) -> list[int]:
    return sorted({ref.number for s in signals for ref in s.refs})


@dataclass
class Ingest:
    """A consumer running in this event loop; `stop()` shuts it down like SIGTERM would."""

    intake: Intake
    publisher: PusherPublisher
    task: asyncio.Task[None]
    stopping: asyncio.Event

    async def stop(self) -> None:
        self.stopping.set()
        await self.task
        await self.publisher.aclose()


@contextlib.asynccontextmanager
async def running_ingest(
    settings: Settings, pool: asyncpg.Pool, client: Client
) -> AsyncIterator[Ingest]:
    """`travis-logs ingest`'s consume loop on the test's pool, client and a real publisher."""
    publisher = build_publisher(settings, None)
    intake = assemble(pool, client, settings, publisher)
    stopping = asyncio.Event()
    ingest = Ingest(
        intake, publisher, asyncio.create_task(consume(intake, settings, stopping)), stopping
    )
    try:
        yield ingest
    finally:
        if not ingest.task.done():
            await ingest.stop()
        await ingest.task


def ingest_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment for a `travis-logs ingest` subprocess with these settings."""
    names = [
        "database_url",
        "rabbitmq_url",
        "temporal_address",
        "temporal_task_queue",
        "amqp_exchange",
        "amqp_queue",
        "amqp_routing_key",
        "ingest_batch_size",
        "ingest_batch_ms",
        "ingest_outbox_stale_s",
        "pusher_app_id",
        "pusher_key",
        "pusher_host",
        "pusher_port",
        "pusher_ssl",
    ]
    env = dict(os.environ)
    for name in names:
        value = getattr(settings, name)
        if value is not None:
            env[name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    if settings.pusher_secret is not None:
        env["PUSHER_SECRET"] = settings.pusher_secret.get_secret_value()
    env.update(extra)
    return env


def unacked(vhost_url: str, queue: str) -> tuple[int, int]:
    """(ready, unacknowledged) messages of a queue, as the broker counts them."""
    vhost = vhost_url.rstrip("/").rsplit("/", 1)[-1] or "/"
    out = subprocess.run(
        [
            "rabbitmqctl",
            "-q",
            "list_queues",
            "-p",
            vhost,
            "name",
            "messages_ready",
            "messages_unacknowledged",
            "--no-table-headers",
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    for line in out.splitlines():
        fields = line.split()
        if fields and fields[0] == queue:
            return int(fields[1]), int(fields[2])
    raise AssertionError(f"queue {queue} not found in {out!r}")
