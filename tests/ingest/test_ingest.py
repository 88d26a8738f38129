"""`travis-logs ingest` against real RabbitMQ, PostgreSQL, Temporal and the local Pusher server."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import re
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from ingest.topology import REASON_HEADER, dead_letter_names
from tests.helpers import assert_eventually, free_port
from tests.ingest.ingest_support import (
    acked,
    broker,
    history_length,
    job_parts,
    part,
    publish,
    queue_depth,
    redeliver_some,
    running_ingest,
    signalled_numbers,
    signals_of,
    stored_parts,
    unacked,
    wait_stored,
)
from tests.pusher_support import pusher_settings, serve, server_config, subscribe, websocket
from travis_logs.localpusher.app import create_app
from travis_logs.parts import LAST_PART_NUMBER, LogPart
from travis_logs.settings import Settings
from workflows.models import workflow_id


@pytest_asyncio.fixture(scope="module")
async def pusher_port() -> AsyncIterator[int]:
    async with serve(create_app(server_config())) as port:
        yield port


@pytest.fixture
def config(settings: Settings, pusher_port: int) -> Settings:
    """This test's AMQP names and Temporal task queue, the local Pusher, short batches."""
    return pusher_settings(settings, pusher_port).model_copy(update={"ingest_batch_ms": 20})


async def test_out_of_order_duplicated_and_redelivered_parts_land_once(
    config: Settings, pool: asyncpg.Pool, temporal_client: Client, job_id: int
) -> None:
    """Shuffled parts, each published twice, some redelivered: every part is stored once."""
    bodies = job_parts(job_id, 40)
    twice = bodies * 2
    random.Random(4).shuffle(twice)
    before = acked()
    async with broker(config) as (channel, topology):
        await publish(topology, config, twice)
        await redeliver_some(config, 25)
        async with running_ingest(config, pool, temporal_client):
            parts = await wait_stored(pool, job_id, len(bodies))
            await assert_eventually(lambda: _is(acked() - before, len(twice)))
        assert await queue_depth(channel, config.amqp_queue) == 0
    assert parts == [(n, f"line {n}\n", False) for n in range(1, 41)] + [(41, "", True)]
    signals = await signals_of(temporal_client, job_id)
    assert 1 <= len(signals) <= 2
    assert 41 in signalled_numbers(signals)


async def test_cleaning_base64_and_last(
    config: Settings, pool: asyncpg.Pool, temporal_client: Client, job_id: int
) -> None:
    """Invalid UTF-8 and NULs are dropped, base64 is decoded, "last" is stored as INT_MAX."""
    raw = b'{"id": %d, "log": "hello to the world\xf1\xe5\x7a!\\u0000", "number": 1}' % job_id
    encoded = base64.b64encode(b"hello, world \xfa\xca\xde\x86wowbytes").decode()
    async with broker(config) as (_, topology), running_ingest(config, pool, temporal_client):
        await publish(
            topology,
            config,
            [raw, part(job_id, 2, encoded, encoding="base64"), part(job_id, "last", final=True)],
        )
        parts = await wait_stored(pool, job_id, 3)
    assert parts == [
        (1, "hello to the worldz!", False),
        (2, "hello, world \u0786wowbytes", False),
        (LAST_PART_NUMBER, "", True),
    ]


async def test_poison_messages_are_dead_lettered_and_their_batch_goes_on(
    config: Settings,
    pool: asyncpg.Pool,
    temporal_client: Client,
    job_id: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Bad messages land in the dead-letter queue with a reason and a TTL; good ones are stored.

    Each dead-lettering is logged with the message's id and the job it claims to be of.
    """
    caplog.set_level(logging.WARNING, logger="ingest.consumer")
    config = config.model_copy(update={"ingest_batch_ms": 500})  # all in one batch
    poison = [b"not json", b"[1]", part(job_id, -1, "x"), part(job_id, 3, "!", encoding="base64")]
    good = [part(job_id, 1, "a"), part(job_id, 2, "b", final=True)]
    async with broker(config) as (channel, topology):
        async with running_ingest(config, pool, temporal_client):
            await publish(topology, config, [good[0], *poison, good[1]])
            parts = await wait_stored(pool, job_id, 2)
            dead = await _drain_dead(channel, config, len(poison))
        assert await queue_depth(channel, config.amqp_queue) == 0
    assert parts == [(1, "a", False), (2, "b", True)]
    assert [body for body, _ in dead] == poison
    assert [reason.partition(":")[0] for _, reason in dead] == ["json", "json", "number", "base64"]
    lines = [r.getMessage() for r in caplog.records if "dead-lettering" in r.getMessage()]
    assert len(lines) == 4
    assert all(re.match(r"dead-lettering message \S+ of job unknown: json", x) for x in lines[:2])
    assert all(f" of job {job_id}: " in line for line in lines[2:])


async def test_a_long_job_costs_no_more_signals_or_history_than_a_short_one(
    config: Settings, pool: asyncpg.Pool, temporal_client: Client, new_job_id: object
) -> None:
    """A 10,000-part job causes at most 3 signals and as many history events as a 10-part job."""
    long_job, short_job = next(new_job_id), next(new_job_id)  # type: ignore[call-overload]
    config = pusher_settings(config, free_port())  # not pushing 10,000 events keeps this quick
    async with broker(config) as (_, topology), running_ingest(config, pool, temporal_client):
        short, long = job_parts(short_job, 9), job_parts(long_job, 9_999)
        # As from travis-worker, first parts come well before the rest (one batch each).
        await publish(topology, config, [short[0], long[0]])
        await wait_stored(pool, long_job, 1)
        await publish(topology, config, short[1:] + long[1:])
        await wait_stored(pool, long_job, 10_000, timeout=60)
        await wait_stored(pool, short_job, 10)
    long_signals = await signals_of(temporal_client, long_job)
    assert len(long_signals) <= 3
    assert signalled_numbers(long_signals) == [1, 10_000]
    assert await history_length(temporal_client, long_job) == await history_length(
        temporal_client, short_job
    )


async def test_parts_after_the_final_part_are_signalled(
    config: Settings, pool: asyncpg.Pool, temporal_client: Client, job_id: int
) -> None:
    """A part stored after the final one is news for the workflow; its duplicate is not."""
    async with broker(config) as (_, topology), running_ingest(config, pool, temporal_client):
        await publish(topology, config, job_parts(job_id, 3))
        await wait_stored(pool, job_id, 4)
        await publish(topology, config, [part(job_id, 5, "late\n")])
        await wait_stored(pool, job_id, 5)
        await publish(topology, config, [part(job_id, 5, "late\n")])
        await assert_eventually(lambda: _has_signal_for(temporal_client, job_id, 5))
    signals = await signals_of(temporal_client, job_id)
    assert [signalled_numbers([s]) for s in signals][-1] == [5]
    assert sum(5 in signalled_numbers([s]) for s in signals) == 1


async def test_stop_flushes_the_batch_in_hand(
    config: Settings, pool: asyncpg.Pool, temporal_client: Client, job_id: int
) -> None:
    """On stop, parts waiting for their batch are stored and acked, none left to the broker."""
    config = config.model_copy(update={"ingest_batch_ms": 60_000, "ingest_batch_size": 1000})
    before = acked()
    async with broker(config) as (channel, topology):
        async with running_ingest(config, pool, temporal_client):
            await publish(topology, config, job_parts(job_id, 5))
            await assert_eventually(lambda: _held(config, (0, 6)))
            assert await stored_parts(pool, job_id) == []
        assert len(await stored_parts(pool, job_id)) == 6
        assert acked() - before == 6
        assert await queue_depth(channel, config.amqp_queue) == 0


async def test_parts_are_pushed_live_with_the_travis_payload(
    config: Settings, pool: asyncpg.Pool, temporal_client: Client, job_id: int
) -> None:
    """A browser on job-<id> gets each part as {"id","_log","number","final"}."""
    async with (
        broker(config) as (_, topology),
        running_ingest(config, pool, temporal_client),
        websocket(config.pusher_port or 0) as ws,
    ):
        await subscribe(ws, f"job-{job_id}")
        await publish(
            topology, config, [part(job_id, 1, "strike! \u270a\n"), part(job_id, 2, "", True)]
        )
        events = [json.loads(await ws.recv()) for _ in range(2)]
    assert [(e["event"], e["channel"]) for e in events] == [("job:log", f"job-{job_id}")] * 2
    assert [e["data"] for e in events] == [
        json.dumps(
            {"id": job_id, "_log": "strike! \u270a\n", "number": 1, "final": False},
            ensure_ascii=False,
            separators=(",", ":"),
        ),
        json.dumps({"id": job_id, "_log": "", "number": 2, "final": True}, separators=(",", ":")),
    ]


async def test_accept_stores_signals_and_is_idempotent_without_amqp(
    config: Settings, pool: asyncpg.Pool, temporal_client: Client, job_id: int
) -> None:
    """The HTTP routes' path: accept stores and signals; the same parts again change nothing."""
    from ingest.intake import assemble
    from travis_logs.pusher.publisher import build_publisher

    publisher = build_publisher(config, None)
    intake = assemble(pool, temporal_client, config, publisher).parts
    parts = [LogPart(job_id, 1, "a"), LogPart(job_id, 1, "dup"), LogPart(job_id, 2, "", True)]
    first = await intake.accept(parts)
    again = await intake.accept(parts)
    await publisher.aclose()
    assert (first.stored, first.duplicates, first.signals) == (2, 1, 1)
    assert (again.stored, again.duplicates, again.signals) == (0, 3, 0)
    assert await stored_parts(pool, job_id) == [(1, "a", False), (2, "", True)]
    assert signalled_numbers(await signals_of(temporal_client, job_id)) == [1, 2]
    assert await pool.fetchval("SELECT count(*) FROM signal_outbox WHERE job_id = $1", job_id) == 0


async def test_the_first_part_starts_a_sleeping_run_that_the_final_part_wakes(
    config: Settings, pool: asyncpg.Pool, temporal_client: Client, job_id: int
) -> None:
    """The first part's run is created with a start delay (no workflow task is scheduled
    while the job streams); the final part's signal-with-start schedules its first task."""
    from ingest.intake import assemble
    from travis_logs.pusher.publisher import build_publisher

    publisher = build_publisher(config, None)
    intake = assemble(pool, temporal_client, config, publisher).parts
    await intake.accept([LogPart(job_id, 1, "a")])
    handle = temporal_client.get_workflow_handle(workflow_id(job_id))
    described = await handle.describe()
    assert described.execution_time is not None
    delay = described.execution_time - described.start_time
    assert delay.total_seconds() == config.logs_force_after_s
    assert await _tasks_scheduled(handle) == 0
    await intake.accept([LogPart(job_id, 2, "", True)])
    await publisher.aclose()
    assert await _tasks_scheduled(handle) == 1
    # The first batch created the log's row, and its signal says so; the final's does not.
    assert [s.created for s in await signals_of(temporal_client, job_id)] == [True, False]


async def _tasks_scheduled(handle: WorkflowHandle[Any, Any]) -> int:
    scheduled = EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
    return sum([e.event_type == scheduled async for e in handle.fetch_history_events()])


async def test_signals_left_in_the_outbox_are_resent(
    config: Settings, pool: asyncpg.Pool, temporal_client: Client, job_id: int
) -> None:
    """Outbox rows a crashed process left behind are sent by the sweep, then deleted."""
    config = config.model_copy(update={"ingest_outbox_stale_s": 0.2})
    refs = json.dumps([{"number": 7, "size": 3, "final": True}])
    await pool.execute(
        "INSERT INTO signal_outbox (job_id, refs, claimed_at) VALUES ($1, $2, now() - interval '1 hour')",
        job_id,
        refs,
    )
    async with running_ingest(config, pool, temporal_client):
        await assert_eventually(lambda: _has_signal_for(temporal_client, job_id, 7))
    assert await pool.fetchval("SELECT count(*) FROM signal_outbox WHERE job_id = $1", job_id) == 0


async def _drain_dead(channel: object, config: Settings, count: int) -> list[tuple[bytes, str]]:
    """Take `count` messages from the dead-letter queue: (body, reason header)."""
    from aio_pika.abc import AbstractChannel

    assert isinstance(channel, AbstractChannel)
    queue = await channel.get_queue(dead_letter_names(config)[1])
    found: list[tuple[bytes, str]] = []

    async def take() -> None:
        message = await queue.get(fail=False, no_ack=True)
        if message is not None:
            assert message.expiration == config.ingest_dead_letter_ttl_s  # the queue's size cap
            found.append((message.body, str((message.headers or {})[REASON_HEADER])))
        assert len(found) == count

    await assert_eventually(take, interval=0.05)
    return found


async def _has_signal_for(client: Client, job_id: int, number: int) -> None:
    assert number in signalled_numbers(await signals_of(client, job_id))


async def _held(config: Settings, expected: tuple[int, int]) -> None:
    held = await asyncio.to_thread(unacked, str(config.rabbitmq_url), config.amqp_queue)
    assert held == expected


async def _is(actual: object, expected: object) -> None:
    assert actual == expected


async def test_the_first_part_after_a_log_was_emptied_is_signalled(
    config: Settings, pool: asyncpg.Pool, temporal_client: Client, job_id: int
) -> None:
    """A log without parts or final part (purged after a forced aggregation) starts again."""
    from ingest.intake import assemble
    from travis_logs.pusher.publisher import build_publisher

    await pool.execute("INSERT INTO logs (job_id, content) VALUES ($1, 'old')", job_id)
    publisher = build_publisher(config, None)
    intake = assemble(pool, temporal_client, config, publisher).parts
    first = await intake.accept([LogPart(job_id, 3, "more")])
    second = await intake.accept([LogPart(job_id, 4, "and more")])
    await publisher.aclose()
    assert (first.signals, second.signals) == (1, 0)
    assert signalled_numbers(await signals_of(temporal_client, job_id)) == [3]


async def test_the_ingest_stamps_the_first_and_the_final_part_once(
    config: Settings, pool: asyncpg.Pool, temporal_client: Client, job_id: int
) -> None:
    """first_part_at on a row that had none (here one created before any part), kept by
    later batches; final_part_at with the final part (the timeline of GET /logs/:id)."""
    from ingest.intake import assemble
    from travis_logs.pusher.publisher import build_publisher

    await pool.execute("INSERT INTO logs (job_id) VALUES ($1)", job_id)
    publisher = build_publisher(config, None)
    intake = assemble(pool, temporal_client, config, publisher).parts
    stamps = "SELECT first_part_at, final_part_at FROM logs WHERE job_id = $1"
    await intake.accept([LogPart(job_id, 0, "a")])
    first, final = await pool.fetchrow(stamps, job_id)
    assert first is not None and final is None
    await intake.accept([LogPart(job_id, 1, "b"), LogPart(job_id, 2, "", True)])
    await publisher.aclose()
    again, final = await pool.fetchrow(stamps, job_id)
    assert again == first and final is not None and final >= first
