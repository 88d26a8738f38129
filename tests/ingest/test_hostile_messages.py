"""Hostile AMQP messages through the real ingest: each is dead-lettered with a bounded reason
and the good parts around it are stored (and, with a worker running, archived) byte-exact.

The corpus holds what a broken or malicious publisher can send: huge fields, deep JSON,
invalid UTF-8, huge base64, wrong types, and odd or huge headers. A dead letter's reason is
copied into a header; unbounded, a megabyte id made a frame RabbitMQ refuses (it closes the
ingest's connection, and every replica that takes the redelivered message stalls the same way).
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aio_pika
import asyncpg
import pytest
import pytest_asyncio
from aio_pika.abc import AbstractChannel
from pamqp.encode import field_table
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from ingest.consumer import DROPPED_HEADERS, REASON_MAX_BYTES
from ingest.topology import REASON_HEADER, Topology, dead_letter_names
from tests.helpers import assert_eventually, open_store
from tests.ingest.ingest_support import broker, part, queue_depth, running_ingest, wait_stored
from tests.pusher_support import pusher_settings, serve, server_config
from travis_logs.localpusher.app import create_app
from travis_logs.settings import Settings
from workers.temporal_worker import build_worker, lifecycle_activities

MAX_PART = 1 << 20  # the default MAX_PART_BYTES
MEGABYTE_DIGITS = "1" * 1_000_000  # fits in MAX_PART_BYTES: it is the id that is bad
# RabbitMQ's default frame_max; a content header frame larger than this closes the connection.
FRAME_MAX = 131_072


@dataclass
class Hostile:
    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    kind: str = ""  # the reason's field, when it is known


def fields(**payload: Any) -> bytes:
    return json.dumps(payload).encode()


def corpus(job_id: int) -> list[Hostile]:
    """Messages no part can be made of (job_id: the job the valid-looking ones claim)."""
    deep = b'{"id":' * 9_000 + b"1" + b"}" * 9_000
    return [
        Hostile(json.dumps({"id": MEGABYTE_DIGITS, "number": 1, "log": "x"}).encode(), kind="id"),
        Hostile(part(job_id, MEGABYTE_DIGITS, "x"), kind="number"),
        Hostile(part(job_id, 1, "x", encoding="e" * (1 << 20)), kind="size"),
        Hostile(part(job_id, 1, "x", encoding="e" * 50_000), kind="encoding"),
        Hostile(part(job_id, 1, "!" * 50_000, encoding="base64"), kind="base64"),
        Hostile(part(job_id, 1, base64.b64encode(b"x" * (1 << 20)).decode()), kind="size"),
        Hostile(fields(id=job_id, number=[1] * 20_000, log="x"), kind="number"),
        Hostile(fields(id=job_id, number=1, log={"nested": ["x"] * 10_000}), kind="log"),
        Hostile(fields(id=job_id, number=1, log="x", final="yes" * 10_000), kind="final"),
        Hostile(b'{"id": ' + b"9" * 60_000 + b"}", kind="json"),
        Hostile(deep, kind="json"),
        Hostile(b"[" * 30_000 + b"]" * 30_000, kind="json"),
        Hostile(b"\xff\xfe" * 20_000, kind="json"),
        Hostile(b'{"id": "\xff\xfe\xfd", "number": 1}', kind="id"),
        Hostile(b'"' + b"x" * 60_000 + b'"', kind="json"),
        Hostile(
            b"not json 1", {"x-odd": {"nested": [1, 2.5, True, None, "é"], "when": 0}}, kind="json"
        ),
        Hostile(b"not json 2", {"x-huge": "h" * 60_000}, kind="json"),
        Hostile(b"not json 3", {f"x-{n}": n for n in range(3_000)}, kind="json"),
    ]


def good_parts(job_id: int, count: int) -> tuple[list[bytes], bytes]:
    """A job's parts (odd bytes, base64, NULs and invalid UTF-8 that cleaning drops) and its
    expected log."""
    bodies, text = [], b""
    for n in range(1, count + 1):
        raw = f"line {n} ✓ \x1b[31mred\x1b[0m\n".encode() + b"\xf1\x00"
        if n % 2:
            bodies.append(part(job_id, n, base64.b64encode(raw).decode(), encoding="base64"))
        else:
            bodies.append(part(job_id, n, raw.decode("utf-8", errors="surrogateescape")))
        text += raw.replace(b"\xf1", b"").replace(b"\x00", b"")
    bodies.append(part(job_id, count + 1, "", final=True))
    return bodies, text


@pytest_asyncio.fixture(scope="module")
async def pusher_port() -> AsyncIterator[int]:
    async with serve(create_app(server_config())) as port:
        yield port


@pytest.fixture
def config(settings: Settings, pusher_port: int) -> Settings:
    return pusher_settings(settings, pusher_port).model_copy(
        update={
            "max_part_bytes": MAX_PART,
            "ingest_batch_ms": 20,
            "logs_quiet_period_s": 0.2,
            "logs_grace_period_s": 0.2,
            "logs_purge_delay_s": 0,
        }
    )


@pytest_asyncio.fixture
async def worker(
    config: Settings, temporal_env: WorkflowEnvironment, pool: asyncpg.Pool
) -> AsyncIterator[None]:
    """The production LogWorkflow worker on this test's task queue."""
    async with (
        open_store(config) as store,
        build_worker(temporal_env.client, config, lifecycle_activities(pool, store)),
    ):
        yield


async def publish(topology: Topology, config: Settings, body: bytes, **headers: Any) -> None:
    message = aio_pika.Message(
        body, headers=headers or None, delivery_mode=aio_pika.DeliveryMode.PERSISTENT
    )
    await topology.exchange.publish(message, routing_key=config.amqp_routing_key)


async def dead_letters(
    channel: AbstractChannel, config: Settings, count: int
) -> list[aio_pika.abc.AbstractIncomingMessage]:
    queue = await channel.get_queue(dead_letter_names(config)[1])
    found: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def take() -> None:
        message = await queue.get(fail=False, no_ack=True)
        if message is not None:
            found.append(message)
        assert len(found) == count

    await assert_eventually(take, interval=0.02)
    return found


def assert_bounded(message: aio_pika.abc.AbstractIncomingMessage) -> str:
    """The reason header is short and the copy's headers fit well inside a frame."""
    headers = message.headers or {}
    reason = str(headers[REASON_HEADER])
    assert 0 < len(reason.encode()) <= REASON_MAX_BYTES, reason[:300]
    assert len(field_table(headers)) < FRAME_MAX // 4
    return reason


async def test_a_megabyte_id_is_dead_lettered_and_the_next_part_is_served(
    config: Settings, pool: asyncpg.Pool, temporal_client: Client, job_id: int
) -> None:
    """The 1 MB digit-string id: a reason that names the length, not a 1 MB header."""
    body = json.dumps({"id": MEGABYTE_DIGITS, "number": 1, "log": "x"}).encode()
    async with broker(config) as (channel, topology):
        ingest = running_ingest(config, pool, temporal_client)
        async with ingest:
            await publish(topology, config, body)
            [dead] = await dead_letters(channel, config, 1)
            await publish(topology, config, part(job_id, 1, "next", final=True))
            assert await wait_stored(pool, job_id, 1) == [(1, "next", True)]
        # Leaving the block stopped the ingest: it did not hang on the hostile message.
        assert await queue_depth(channel, config.amqp_queue) == 0
    assert dead.body == body
    reason = assert_bounded(dead)
    assert reason.startswith("id: 1111") and f"({len(MEGABYTE_DIGITS)} bytes)" in reason


async def test_headers_that_fill_a_frame_do_not_stop_the_dead_letter(
    config: Settings, pool: asyncpg.Pool, temporal_client: Client, job_id: int
) -> None:
    """An original whose headers nearly fill a frame: the copy drops them, with a note."""
    filler = "h" * (FRAME_MAX - 200)  # the original fits; with a reason beside it, it did not
    async with (
        broker(config) as (channel, topology),
        running_ingest(config, pool, temporal_client),
    ):
        await publish(topology, config, b"not json", **{"x-filler": filler})
        [dead] = await dead_letters(channel, config, 1)
        await publish(topology, config, part(job_id, 1, "next", final=True))
        assert await wait_stored(pool, job_id, 1) == [(1, "next", True)]
    assert_bounded(dead)
    assert "x-filler" not in (dead.headers or {})
    assert "exceed" in str((dead.headers or {})[DROPPED_HEADERS])


async def test_small_headers_travel_with_the_dead_letter(
    config: Settings, pool: asyncpg.Pool, temporal_client: Client
) -> None:
    """What an operator needs to trace a message (its own headers) is kept when it fits."""
    async with (
        broker(config) as (channel, topology),
        running_ingest(config, pool, temporal_client),
    ):
        await publish(topology, config, b"not json", **{"x-trace": "abc"})
        [dead] = await dead_letters(channel, config, 1)
    assert (dead.headers or {})["x-trace"] == "abc"
    assert DROPPED_HEADERS not in (dead.headers or {})


async def test_a_hostile_corpus_among_good_parts(
    config: Settings,
    pool: asyncpg.Pool,
    temporal_client: Client,
    worker: None,
    new_job_id: Any,
) -> None:
    """Every bad message is dead-lettered with a bounded reason of its kind; every good log is
    stored and archived byte-exact."""
    jobs = [next(new_job_id) for _ in range(3)]
    hostile = corpus(jobs[0])
    goods = {job: good_parts(job, 6) for job in jobs}
    interleaved: list[tuple[bytes, dict[str, Any]]] = []
    for n, bad in enumerate(hostile):
        job = jobs[n % len(jobs)]
        bodies = goods[job][0]
        index = n // len(jobs)
        if index < len(bodies) - 1:  # the final parts come last
            interleaved.append((bodies[index], {}))
        interleaved.append((bad.body, bad.headers))
    sent = {body for body, _ in interleaved}
    rest = [b for job in jobs for b in goods[job][0] if b not in sent]
    async with broker(config) as (channel, topology):
        async with running_ingest(config, pool, temporal_client):
            for body, headers in interleaved:
                await publish(topology, config, body, **headers)
            for body in rest:
                await publish(topology, config, body)
            dead = await dead_letters(channel, config, len(hostile))
            for job in jobs:
                await wait_stored(pool, job, 7)
        assert await queue_depth(channel, config.amqp_queue) == 0
    by_body = {m.body: m for m in dead}
    assert set(by_body) == {h.body for h in hostile}
    for bad in hostile:
        reason = assert_bounded(by_body[bad.body])
        assert reason.partition(":")[0] == bad.kind, (bad.body[:60], reason)
    async with open_store(config) as store:
        for job in jobs:

            async def archived(job: int = job) -> bytes | None:
                content = await store.fetch(job)
                assert content is not None
                return content

            assert await assert_eventually(archived, timeout=60) == goods[job][1]
