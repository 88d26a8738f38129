"""The size limit end to end: RabbitMQ, ingest, Pusher, LogWorkflow, PostgreSQL, S3, the API.

A job streams twice LOGS_MAX_BYTES (small here: 64 KiB, head 16 KiB, tail 48 KiB, parts of
1,000 bytes). The archive keeps the head, one marker line and the newest tail byte for byte;
the database never holds more than the limit after a batch; a late part in the left-out
middle is counted, not stored; live viewers got every part; a redaction still finds a
secret in the head and in the tail; GET /logs/:id says `truncated` with the counts.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest_asyncio
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.testing import WorkflowEnvironment

from tests.api.conftest import TOKEN, running_api
from tests.api.test_logs import archived
from tests.helpers import assert_eventually, log_row, open_store
from tests.ingest.ingest_support import broker, part, publish, running_ingest
from tests.pusher_support import subscribe, websocket
from travis_logs.settings import Settings
from workers.temporal_worker import build_worker, lifecycle_activities
from workflows.models import QUERY_STATUS, LogWorkflowState, workflow_id

KIB = 1024
PART = 1000  # bytes of every part but the final one
BATCH = 8
PARTS = 130  # 130,000 bytes: about twice the limit
LATE = 40  # left out of the stream, sent once the middle is cut: counted, not stored
FINAL = PARTS  # the empty final part


@pytest_asyncio.fixture(scope="module")
async def limited(api_settings: Settings) -> Settings:
    tag = uuid.uuid4().hex[:10]
    return api_settings.model_copy(
        update={
            "temporal_task_queue": f"limit-{tag}",
            "amqp_exchange": f"reporting-{tag}",
            "amqp_queue": f"reporting.jobs.logs-{tag}",
            "logs_max_bytes": 64 * KIB,
            "logs_head_bytes": 16 * KIB,
            "logs_tail_bytes": 48 * KIB,
            "ingest_batch_size": BATCH,
        }
    )


@pytest_asyncio.fixture(scope="module")
async def stack(
    limited: Settings, pool: asyncpg.Pool, temporal_env: WorkflowEnvironment, api_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    """Ingest, a LogWorkflow worker and an API, all with the small limit; a client of it."""
    async with (
        open_store(limited) as store,
        build_worker(temporal_env.client, limited, lifecycle_activities(pool, store)),
        broker(limited),
        running_ingest(limited, pool, temporal_env.client),
        running_api(limited) as url,
        httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"token {TOKEN}"}, timeout=30
        ) as client,
    ):
        yield client


def text_of(job_id: int, number: int) -> str:
    """Part `number`: one line of exactly PART bytes, secrets in a head and a tail part."""
    words = {3: f" HEADSECRET{job_id}", 120: f" TAILSECRET{job_id}"}.get(number, "")
    line = f"part {number:05d}{words} "
    return line + "." * (PART - len(line) - 1) + "\n"


async def stored_bytes(pool: asyncpg.Pool, job_id: int) -> int:
    """Every byte of the log in the database: its parts and its content."""
    total: int = await pool.fetchval(
        """
        SELECT coalesce(octet_length(l.content), 0)
             + coalesce((SELECT sum(octet_length(p.content)) FROM log_parts p
                         WHERE p.log_id = l.id), 0)
        FROM logs l WHERE l.job_id = $1
        """,
        job_id,
    )
    return total


async def send(settings: Settings, bodies: list[bytes]) -> None:
    async with broker(settings) as (_, topology):
        await publish(topology, settings, bodies)


async def wait_received(pool: asyncpg.Pool, job_id: int, expected: int) -> None:
    async def committed() -> None:
        got = await pool.fetchval("SELECT received_bytes FROM logs WHERE job_id = $1", job_id)
        assert got == expected

    await assert_eventually(committed, interval=0.02)


async def test_a_log_twice_the_limit_keeps_head_marker_and_tail(
    stack: httpx.AsyncClient,
    limited: Settings,
    pool: asyncpg.Pool,
    temporal_env: WorkflowEnvironment,
    pusher_port: int,
    job_id: int,
) -> None:
    streamed = [n for n in range(PARTS) if n != LATE]
    async with websocket(pusher_port) as ws:
        await subscribe(ws, f"job-{job_id}")
        await asyncio.sleep(1.5)  # the occupancy webhook, and the ingest's 1 s cache of it
        received = 0
        for at in range(0, len(streamed), BATCH):
            chunk = streamed[at : at + BATCH]
            await send(limited, [part(job_id, n, text_of(job_id, n)) for n in chunk])
            received += PART * len(chunk)
            await wait_received(pool, job_id, received)
            # After every batch: never more than the limit (within one, the batch on top).
            assert await stored_bytes(pool, job_id) <= limited.logs_max_bytes

        row = await log_row(pool, job_id)
        assert row["elided_from"] is not None and LATE in range(
            row["elided_from"], row["tail_from"]
        )
        before = (row["elided_bytes"], row["elided_parts"])
        await send(limited, [part(job_id, LATE, text_of(job_id, LATE))])
        await wait_received(pool, job_id, received + PART)
        row = await log_row(pool, job_id)
        assert (row["elided_bytes"], row["elided_parts"]) == (before[0] + PART, before[1] + 1)
        assert not await pool.fetchval(
            "SELECT count(*) FROM log_parts WHERE log_id = $1 AND number = $2", row["id"], LATE
        )
        # Live (not aggregated yet): a read shows the log as the aggregation will leave it,
        # and its index places every kept part and the marker where they are in that text.
        live = (await stack.get(f"/logs/{job_id}")).json()["content"].encode()
        assert live.startswith(text_of(job_id, 0).encode()) and b"left out here" in live
        columns = (await stack.get(f"/logs/{job_id}/index")).json()["parts"]
        entries = zip(columns["number"], columns["offset"], columns["size"], strict=True)
        for number, offset, size in entries:
            piece = live[offset : offset + size]
            if number == row["elided_from"]:
                assert piece.startswith(b"[travis-logs: ") and piece.endswith(b"]\n")
            else:
                assert piece == text_of(job_id, number).encode()
        await send(limited, [part(job_id, FINAL, "", final=True)])
        events = [json.loads(await asyncio.wait_for(ws.recv(), 15)) for _ in range(PARTS + 1)]
    # The limit is on storage: live viewers got every part.
    assert sorted(json.loads(e["data"])["number"] for e in events) == list(range(PARTS + 1))

    # 16 parts fit the 16 KiB head, 49 the 48 KiB tail (and the empty final part); 65 left out.
    head = "".join(text_of(job_id, n) for n in range(16))
    tail = "".join(text_of(job_id, n) for n in range(PARTS - 49, PARTS))
    marker = (
        "[travis-logs: 65000 bytes in 65 parts left out here; the log exceeded LOGS_MAX_BYTES]\n"
    )
    whole = head + marker + tail

    async def purged() -> None:
        assert await archived(limited, job_id) == whole.encode()
        row = await log_row(pool, job_id)
        assert row["purged_at"] is not None and row["archive_verified"]

    await assert_eventually(purged, timeout=30)
    assert await stored_bytes(pool, job_id) == 0

    got = (await stack.get(f"/logs/{job_id}")).json()
    assert got["truncated"] == {"elided_bytes": 65000, "elided_parts": 65}
    assert got["content"] == whole and got["complete"] and got["missing_parts"] == []
    handle = temporal_env.client.get_workflow_handle(workflow_id(job_id))
    state = await handle.query(QUERY_STATUS, result_type=LogWorkflowState)
    assert (state.stats.elided_bytes, state.stats.elided_parts) == (65000, 65)
    assert state.missing_parts == []  # left out is not missing
    # The Temporal UI shows it in the workflow's current details.
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert "truncated (LOGS_MAX_BYTES): 65000 bytes in 65 parts" in metadata.current_details

    # A redaction finds the secret in the head and in the tail of the archived log.
    secrets = [f"HEADSECRET{job_id}", f"TAILSECRET{job_id}"]
    body = {"strings": secrets, "reason": "leaked", "requested_by": "ops@example.com"}
    response = await stack.post(f"/logs/{job_id}/redactions", json=body)
    assert response.status_code == 200, response.text
    assert (response.json()["occurrences"], response.json()["archived"]) == (2, True)
    masked = whole
    for secret in secrets:
        masked = masked.replace(secret, "*" * len(secret))
    assert await archived(limited, job_id) == masked.encode()

    # Content replaced through PUT /logs is whole again.
    put = await stack.put(f"/logs/{job_id}", content=b"replaced\n")
    assert put.status_code == 200, put.text
    got = (await stack.get(f"/logs/{job_id}")).json()
    assert got["truncated"] is None and got["content"] == "replaced\n"


async def test_a_log_under_the_limit_is_whole(
    stack: httpx.AsyncClient, limited: Settings, pool: asyncpg.Pool, job_id: int
) -> None:
    """Exactly the limit: every byte kept, no marker, `truncated` null."""
    count = limited.logs_max_bytes // PART
    texts = [text_of(job_id, n) for n in range(count)]
    await send(limited, [part(job_id, n, t) for n, t in enumerate(texts)])
    await send(limited, [part(job_id, count, "", final=True)])

    async def whole() -> None:
        assert await archived(limited, job_id) == "".join(texts).encode()

    await assert_eventually(whole, timeout=30)
    got = (await stack.get(f"/logs/{job_id}")).json()
    assert got["truncated"] is None and got["content"] == "".join(texts)
