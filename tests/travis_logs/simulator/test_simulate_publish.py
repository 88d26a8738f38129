"""`travis-logs simulate` on a real RabbitMQ: what travis-worker publishes, and nothing lost."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aio_pika
import pytest

from travis_logs.parts import parse_message
from travis_logs.settings import Settings
from travis_logs.simulator.job import JobOptions, build_job
from travis_logs.simulator.manifest import Manifest
from travis_logs.simulator.messages import PoisonMessage
from travis_logs.simulator.runner import SimulationOptions
from travis_logs.simulator.sinks import AmqpSink, SinkError
from workers import simulate

pytestmark = pytest.mark.timeout(60)


async def drain(settings: Settings, count: int) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Take `count` messages off the test's queue (declared by the simulator, like travis-worker)."""
    async with await aio_pika.connect(str(settings.rabbitmq_url)) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(settings.amqp_queue, durable=True)
        messages = []
        async with queue.iterator() as incoming:
            async for message in incoming:
                await message.ack()
                messages.append(message)
                if len(messages) == count:
                    break
    await delete_queue(settings)
    return messages


async def delete_queue(settings: Settings) -> None:
    async with await aio_pika.connect(str(settings.rabbitmq_url)) as connection:
        channel = await connection.channel()
        await channel.queue_delete(settings.amqp_queue)


async def test_parts_are_published_as_travis_worker_publishes_them(settings: Settings, new_job_id):
    """Persistent JSON messages of type job:test:log, in part order, that parse into the manifest's log."""
    first, second = next(new_job_id), next(new_job_id)
    assert second == first + 1
    options = SimulationOptions(
        jobs=2, seed=11, start_job_id=first, job=JobOptions(parts=6, speed=0)
    )
    manifest = await simulate.run(settings, options)
    assert [r.job_id for r in manifest.jobs] == [first, second]
    messages = await drain(settings, 12)
    for message in messages:
        assert message.content_type == "application/json"
        assert message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
        assert message.type == "job:test:log" and message.timestamp is not None
    parts = [parse_message(m.body, 1 << 20) for m in messages]
    for record in manifest.jobs:
        own = [p for p in parts if p.job_id == record.job_id]
        assert [p.number for p in own] == list(range(6)) and own[-1].final
        expected = build_job(record.job_id, 11, options.job).expected_log
        assert "".join(p.content for p in own).encode() == expected
        assert len(expected) == record.bytes


async def test_an_unroutable_message_is_an_error(settings: Settings):
    """With no queue bound, publishing fails loudly instead of reporting a log nobody received."""
    async with await aio_pika.connect(str(settings.rabbitmq_url)) as connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            settings.amqp_exchange, aio_pika.ExchangeType.TOPIC
        )
        with pytest.raises(SinkError, match="no queue is bound"):
            await AmqpSink(exchange, "nowhere").send([PoisonMessage(1, "test", b"{}")])
        await exchange.delete()


async def test_cli_writes_the_manifest_and_prints_links(
    settings: Settings, new_job_id, tmp_path: Path
):
    """`travis-logs simulate` prints the viewer and workflow links and writes the JSON manifest."""
    job_id = next(new_job_id)
    path = tmp_path / "manifest.json"
    argv = [
        "--jobs",
        "1",
        "--start-job-id",
        str(job_id),
        "--parts",
        "4",
        "--speed",
        "0",
        "--faults",
    ]
    env = os.environ | {
        "RABBITMQ_URL": str(settings.rabbitmq_url),
        "AMQP_EXCHANGE": settings.amqp_exchange,
        "AMQP_QUEUE": settings.amqp_queue,
        "COLUMNS": "200",
    }
    done = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "workers.cli",
            "simulate",
            *argv,
            "--manifest",
            str(path),
            "--print-links",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert f"/jobs/{job_id}" in done.stdout and f"/workflows/log-{job_id}" in done.stdout
    manifest = Manifest.read(path)
    assert [(r.job_id, r.parts) for r in manifest.jobs] == [(job_id, 4)]
    assert manifest.jobs[0].sha256[:16] in done.stdout  # the summary table
    await delete_queue(settings)
