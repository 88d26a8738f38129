"""End to end: a part published to RabbitMQ reaches pusher-js through `travis-logs ingest`."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import asyncpg
import httpx
import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families
from temporalio.testing import WorkflowEnvironment

from tests.helpers import assert_eventually, free_port
from tests.ingest.ingest_support import broker, ingest_env, part, publish, stored_parts
from tests.pusher_support import PusherJs, ensure_pusher_js, pusher_settings, serve, server_config
from travis_logs.localpusher.app import create_app
from travis_logs.parts import LogPart
from travis_logs.pusher.occupancy import OccupancyStore
from travis_logs.pusher.publisher import payload_json
from travis_logs.settings import Settings


@dataclass(frozen=True)
class Stack:
    settings: Settings
    pusher_port: int
    metrics_port: int


@pytest_asyncio.fixture(scope="module")
async def stack(
    defaults: Settings, database_url: str, amqp_url: str, temporal_env: WorkflowEnvironment
) -> AsyncIterator[Stack]:
    """The local Pusher server and a `travis-logs ingest` process with the existence check on."""
    ensure_pusher_js()
    tag = uuid.uuid4().hex[:10]
    async with serve(create_app(server_config())) as pusher_port:
        settings = pusher_settings(defaults, pusher_port).model_copy(
            update={
                "database_url": database_url,
                "rabbitmq_url": amqp_url,
                "temporal_address": temporal_env.client.service_client.config.target_host,
                "temporal_task_queue": f"tq-{tag}",
                "amqp_exchange": f"reporting-{tag}",
                "amqp_queue": f"reporting.jobs.logs-{tag}",
                "ingest_batch_ms": 5,
            }
        )
        metrics_port = free_port()
        env = ingest_env(
            settings,
            PUSHER_EXISTENCE_CHECK="true",
            PUSHER_OCCUPANCY_TTL_S="0",
            INGEST_METRICS_PORT=str(metrics_port),
        )
        async with broker(settings):  # the queue exists before ingest starts consuming
            pass
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "workers.cli", "ingest", env=env
        )
        try:
            yield Stack(settings, pusher_port, metrics_port)
        finally:
            process.terminate()
            assert await asyncio.wait_for(process.wait(), 20) == 0


async def _skipped(stack: Stack) -> float:
    """The ingest process's count of parts not pushed because nobody watched."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{stack.metrics_port}/metrics")).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "travis_logs_pusher_events_total" and sample.labels == {
                "outcome": "skipped"
            }:
                return sample.value
    return 0.0


async def _publish(stack: Stack, *bodies: bytes) -> None:
    async with broker(stack.settings) as (_, topology):
        await publish(topology, stack.settings, bodies)


@pytest.mark.timeout(90)
async def test_part_from_rabbitmq_arrives_in_pusher_js_exactly(
    stack: Stack, pool: asyncpg.Pool, job_id: int
) -> None:
    """travis-worker's message comes out of pusher-js as the exact string, emoji intact."""
    await OccupancyStore(pool).mark(f"job-{job_id}", True)
    async with PusherJs.run(stack.pusher_port, [f"job-{job_id}"], frames=True) as js:
        await js.ready()
        await _publish(stack, part(job_id, 1, "hello ✊ 🚀 wörld\n"))
        await js.wait_for(lambda c: bool(c.of_kind("frame")), timeout=60)
    expected = payload_json(LogPart(job_id, 1, "hello ✊ 🚀 wörld\n", False))
    assert [f["raw"] for f in js.of_kind("frame")] == [expected]
    assert [e["data"] for e in js.of_kind("event")] == [expected]


@pytest.mark.timeout(90)
async def test_vacated_channel_parts_are_stored_not_pushed(
    stack: Stack, pool: asyncpg.Pool, new_job_id: Iterator[int]
) -> None:
    """With the existence check on, an unwatched job's part is stored, skipped and counted."""
    watched, unwatched = next(new_job_id), next(new_job_id)
    store = OccupancyStore(pool)
    await store.mark(f"job-{watched}", True)
    await store.mark(f"job-{unwatched}", True)
    await store.mark(f"job-{unwatched}", False)
    skipped = await _skipped(stack)
    channels = [f"job-{unwatched}", f"job-{watched}"]
    async with PusherJs.run(stack.pusher_port, channels) as js:
        await js.ready()
        await _publish(stack, part(unwatched, 1, "nobody looks"), part(watched, 1, "seen"))
        await js.wait_for(lambda c: bool(c.of_kind("event")), timeout=60)
        await asyncio.sleep(0.3)  # room for a wrongly pushed part to arrive

    async def counted() -> None:
        assert await _skipped(stack) - skipped >= 1

    await assert_eventually(counted)
    assert [e["channel"] for e in js.of_kind("event")] == [f"job-{watched}"]
    assert await stored_parts(pool, unwatched) == [(1, "nobody looks", False)]
