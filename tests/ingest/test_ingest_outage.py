"""Database failures on a private PostgreSQL: an outage mid-stream, a part the database refuses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
import pytest_asyncio
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from temporalio.client import Client

from ingest.topology import REASON_HEADER, dead_letter_names
from tests.helpers import assert_eventually, free_port
from tests.ingest.ingest_support import (
    broker,
    job_parts,
    part,
    publish,
    running_ingest,
    signalled_numbers,
    signals_of,
    unacked,
    wait_stored,
)
from tests.private_postgres import PrivatePostgres, private_postgres
from tests.pusher_support import pusher_settings
from travis_logs.db import create_pool
from travis_logs.migrate import migrate
from travis_logs.settings import Settings


@pytest.fixture(scope="module")
def cluster() -> Iterator[PrivatePostgres]:
    """A PostgreSQL of these tests' own: stopping it disturbs no other test."""
    with private_postgres() as pg:
        yield pg


@pytest_asyncio.fixture(scope="module")
async def private_pool(cluster: PrivatePostgres) -> AsyncIterator[asyncpg.Pool]:
    await migrate(cluster.dsn)
    pool = await create_pool(cluster.dsn)
    yield pool
    await pool.close()


async def test_no_ack_while_postgres_is_down_and_every_part_stored_after(
    settings: Settings,
    cluster: PrivatePostgres,
    private_pool: asyncpg.Pool,
    temporal_client: Client,
    job_id: int,
) -> None:
    """Parts published during an outage stay with the broker, then land once when it is back."""
    config = pusher_settings(settings, free_port()).model_copy(
        update={"database_url": cluster.dsn, "ingest_batch_ms": 20}
    )
    bodies = job_parts(job_id, 20)
    async with (
        broker(config) as (_, topology),
        running_ingest(config, private_pool, temporal_client),
    ):
        await publish(topology, config, bodies[:10])
        await wait_stored(private_pool, job_id, 10)
        await asyncio.to_thread(cluster.stop)
        await publish(topology, config, bodies[10:])
        await asyncio.sleep(2)  # the ingest retries meanwhile
        assert await _held(config) == (0, len(bodies) - 10)
        await asyncio.to_thread(cluster.start)
        parts = await wait_stored(private_pool, job_id, len(bodies), timeout=30)
        await assert_eventually(lambda: _is(_held(config), (0, 0)))
    assert parts == [(n, f"line {n}\n", False) for n in range(1, 21)] + [(21, "", True)]
    await assert_eventually(lambda: _has(temporal_client, job_id, [1, 21]))


async def test_a_part_the_database_keeps_refusing_is_dead_lettered(
    settings: Settings,
    cluster: PrivatePostgres,
    private_pool: asyncpg.Pool,
    temporal_client: Client,
    job_id: int,
) -> None:
    """A part that fails alone for an unexpected reason goes to the dead-letter queue; its batch is stored."""
    await private_pool.execute(
        "ALTER TABLE log_parts ADD CONSTRAINT refuse_poison CHECK (content NOT LIKE '%poison%')"
    )
    config = pusher_settings(settings, free_port()).model_copy(
        update={"database_url": cluster.dsn, "ingest_batch_ms": 200, "ingest_store_attempts": 2}
    )
    bodies = job_parts(job_id, 4)
    bodies.insert(2, part(job_id, 99, "poison\n"))
    try:
        async with (
            broker(config) as (channel, topology),
            running_ingest(config, private_pool, temporal_client),
        ):
            await publish(topology, config, bodies)
            parts = await wait_stored(private_pool, job_id, 5)
            dead = await channel.get_queue(dead_letter_names(config)[1])
            message = await _one(dead)
            await assert_eventually(lambda: _is(_held(config), (0, 0)))
    finally:
        await private_pool.execute("ALTER TABLE log_parts DROP CONSTRAINT refuse_poison")
    assert [n for n, _, _ in parts] == [1, 2, 3, 4, 5]
    assert message.body == bodies[2]
    reason = str((message.headers or {})[REASON_HEADER])
    assert reason.startswith("store: CheckViolationError")


async def _one(queue: AbstractQueue) -> AbstractIncomingMessage:
    async def take() -> AbstractIncomingMessage:
        message = await queue.get(fail=False, no_ack=True)
        assert message is not None
        return message

    return await assert_eventually(take)


async def _held(config: Settings) -> tuple[int, int]:
    return await asyncio.to_thread(unacked, str(config.rabbitmq_url), config.amqp_queue)


async def _has(client: Client, job_id: int, numbers: list[int]) -> None:
    assert set(numbers) <= set(signalled_numbers(await signals_of(client, job_id)))


async def _is(actual: object, expected: object) -> None:
    assert await actual == expected  # type: ignore[misc]
