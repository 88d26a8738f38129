"""Ingest failures: a SIGKILLed consumer, a lost broker connection; nothing lost or duplicated."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from temporalio.client import Client

from tests.helpers import assert_eventually, free_port
from tests.ingest.ingest_services import ingest_process, tcp_proxy
from tests.ingest.ingest_support import (
    broker,
    ingest_env,
    job_parts,
    part,
    publish,
    running_ingest,
    signalled_numbers,
    signals_of,
    stored_parts,
    unacked,
    wait_stored,
)
from tests.pusher_support import pusher_settings
from travis_logs.settings import Settings


@pytest.fixture
def config(settings: Settings) -> Settings:
    # Pusher is not under test here: nothing listens on that port, which ingest shrugs off.
    return pusher_settings(settings, free_port()).model_copy(
        update={"ingest_batch_ms": 20, "ingest_outbox_stale_s": 0.5}
    )


async def held_by_broker(config: Settings) -> tuple[int, int]:
    return await asyncio.to_thread(unacked, str(config.rabbitmq_url), config.amqp_queue)


async def test_parts_are_stored_and_acked_while_temporal_stalls_and_a_kill_loses_nothing(
    config: Settings,
    pool: asyncpg.Pool,
    temporal_client: Client,
    new_job_id: object,
    tmp_path: Path,
) -> None:
    """Temporal stops answering: the batches are stored and acked all the same (their
    signals wait in the outbox); the consumer dies before it could send them; after a
    restart each part is there once and every transition is signalled."""
    jobs = [next(new_job_id), next(new_job_id)]  # type: ignore[call-overload]
    bodies = [body for job in jobs for body in job_parts(job, 30)]
    target = str(config.temporal_address)
    async with broker(config) as (_, topology), tcp_proxy(target) as proxy:
        env = ingest_env(config, TEMPORAL_ADDRESS=f"127.0.0.1:{proxy.port}")
        with ingest_process(env, tmp_path) as first:
            await first.consuming()
            proxy.stall()
            await publish(topology, config, bodies)
            for job in jobs:
                await wait_stored(pool, job, 31)
            await assert_eventually(lambda: _is(held_by_broker(config), (0, 0)))
            first.kill()
        await _restart_signals_all(config, pool, temporal_client, jobs, tmp_path, [1, 31])
    for job in jobs:
        assert await stored_parts(pool, job) == [
            (n, f"line {n}\n", False) for n in range(1, 31)
        ] + [(31, "", True)]


async def test_past_the_signals_in_flight_a_batch_waits_unacked_and_a_kill_loses_nothing(
    config: Settings,
    pool: asyncpg.Pool,
    temporal_client: Client,
    new_job_id: object,
    tmp_path: Path,
) -> None:
    """With INGEST_SIGNALS_IN_FLIGHT signals waiting for a stalled Temporal, the next batch
    is committed and held unacked; the consumer dies between that commit and its ack."""
    jobs = [next(new_job_id), next(new_job_id)]  # type: ignore[call-overload]
    target = str(config.temporal_address)
    async with broker(config) as (_, topology), tcp_proxy(target) as proxy:
        env = ingest_env(
            config, TEMPORAL_ADDRESS=f"127.0.0.1:{proxy.port}", INGEST_SIGNALS_IN_FLIGHT="1"
        )
        with ingest_process(env, tmp_path) as first:
            await first.consuming()
            proxy.stall()
            # One part each, so one batch and one signal each: the first job's signal is on
            # its way (acked), the second one's would pass the limit (held).
            await publish(topology, config, [part(jobs[0], 1, "", final=True)])
            await wait_stored(pool, jobs[0], 1)
            await assert_eventually(lambda: _is(held_by_broker(config), (0, 0)))
            await publish(topology, config, [part(jobs[1], 1, "", final=True)])
            await wait_stored(pool, jobs[1], 1)
            assert await held_by_broker(config) == (0, 1)  # committed, not acked
            first.kill()
        await _restart_signals_all(config, pool, temporal_client, jobs, tmp_path, [1])
    for job in jobs:
        assert await stored_parts(pool, job) == [(1, "", True)]


async def _restart_signals_all(
    config: Settings,
    pool: asyncpg.Pool,
    client: Client,
    jobs: list[int],
    tmp_path: Path,
    numbers: list[int],
) -> None:
    """A second ingest takes what the broker kept and resends the outbox: every job hears
    of `numbers`, and the outbox is empty."""
    assert await _outbox(pool, jobs) > 0
    with ingest_process(ingest_env(config), tmp_path) as second:
        await second.consuming()
        await assert_eventually(lambda: _is(held_by_broker(config), (0, 0)))
        for job in jobs:
            await assert_eventually(functools.partial(_signalled, client, job, numbers))
        assert await second.terminate() == 0
        assert "Traceback" not in second.text(), second.text()
    assert (
        await pool.fetchval("SELECT count(*) FROM signal_outbox WHERE job_id = ANY($1)", jobs) == 0
    )


async def test_kill_mid_stream_and_restart_stores_every_part_once(
    config: Settings, pool: asyncpg.Pool, temporal_client: Client, job_id: int, tmp_path: Path
) -> None:
    """SIGKILL at a random point of a 3,000-part stream: after restart each part is there once."""
    bodies = job_parts(job_id, 2_999)
    async with broker(config) as (_, topology):
        with ingest_process(ingest_env(config), tmp_path) as first:
            await first.consuming()
            await publish(topology, config, bodies)
            await assert_eventually(lambda: _some_stored(pool, job_id))
            first.kill()
        with ingest_process(ingest_env(config), tmp_path) as second:
            await second.consuming()
            parts = await wait_stored(pool, job_id, 3_000)
            await assert_eventually(lambda: _is(held_by_broker(config), (0, 0)))
            assert await second.terminate() == 0
            assert "Traceback" not in second.text(), second.text()
    assert [n for n, _, _ in parts] == list(range(1, 3_001))
    assert parts[-1] == (3_000, "", True)
    await assert_eventually(lambda: _signalled(temporal_client, job_id, [1, 3_000]))


async def _outbox(pool: asyncpg.Pool, jobs: list[int]) -> int:
    count: int = await pool.fetchval(
        "SELECT count(*) FROM signal_outbox WHERE job_id = ANY($1)", jobs
    )
    return count


async def _some_stored(pool: asyncpg.Pool, job_id: int) -> None:
    assert len(await stored_parts(pool, job_id)) > 0


async def _signalled(client: Client, job_id: int, numbers: list[int]) -> None:
    assert set(numbers) <= set(signalled_numbers(await signals_of(client, job_id)))


async def _is(actual: object, expected: object) -> None:
    assert await actual == expected  # type: ignore[misc]


async def test_lost_broker_connection_reconnects_and_consumes_on(
    config: Settings, pool: asyncpg.Pool, temporal_client: Client, job_id: int
) -> None:
    """When the AMQP connection drops mid-stream the consumer reconnects; every part lands once."""
    bodies = job_parts(job_id, 40)
    host, port = "127.0.0.1", urlsplit(str(config.rabbitmq_url)).port or 5672
    async with broker(config) as (_, topology), tcp_proxy(f"{host}:{port}") as proxy:
        url = urlsplit(str(config.rabbitmq_url))
        via_proxy = url._replace(
            netloc=f"guest:guest@127.0.0.1:{proxy.port}", query="reconnect_interval=0.2"
        )
        ingest_config = config.model_copy(update={"rabbitmq_url": urlunsplit(via_proxy)})
        async with running_ingest(ingest_config, pool, temporal_client):
            await publish(topology, config, bodies[:20])
            await wait_stored(pool, job_id, 20)
            proxy.cut()
            await publish(topology, config, bodies[20:])
            parts = await wait_stored(pool, job_id, 41)
            await assert_eventually(lambda: _is(held_by_broker(config), (0, 0)))
    assert parts == [(n, f"line {n}\n", False) for n in range(1, 41)] + [(41, "", True)]
