"""PUT /logs through a claim check: log text never enters Temporal, and 4 MB logs work."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from functools import partial

import asyncpg
import httpx
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tests.api.conftest import TOKEN, running_api
from tests.api.test_logs import archived
from tests.helpers import assert_eventually
from travis_logs.settings import Settings
from workflows.models import workflow_id

FOUR_MB = 4 * 1024 * 1024


@pytest_asyncio.fixture(scope="module")
async def roomy(api_settings: Settings, log_worker: None) -> AsyncIterator[httpx.AsyncClient]:
    """The API with the default body limit (8 MiB) instead of the session's small one."""
    settings = api_settings.model_copy(update={"api_max_body_bytes": Settings().api_max_body_bytes})
    headers = {"Authorization": f"token {TOKEN}"}
    async with (
        running_api(settings) as url,
        httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as c,
    ):
        yield c


def big_log(marker: str) -> bytes:
    line = f"{marker} building, testing, deploying ✓\n".encode()
    return (line * (FOUR_MB // len(line) + 1))[:FOUR_MB]


async def histories(client: Client, job_id: int) -> list[bytes]:
    """Every event of every run of the job's workflow, as the bytes Temporal stores."""
    runs = [r async for r in client.list_workflows(f"WorkflowId = '{workflow_id(job_id)}'")]
    assert runs, "the update started no run"
    events = []
    for run in runs:
        history = await client.get_workflow_handle(run.id, run_id=run.run_id).fetch_history()
        events += [e.SerializeToString() for e in history.events]
    return events


async def test_four_megabyte_put_is_stored_archived_and_read_back(
    roomy: httpx.AsyncClient, api_settings: Settings, job_id: int
) -> None:
    """A 4 MB body (twice Temporal's payload limit) replaces the log and reaches S3 whole."""
    body = big_log("big")
    response = await roomy.put(f"/logs/{job_id}", content=body)
    assert response.status_code == 200, response.text[:300]
    got = (await roomy.get(f"/logs/{job_id}")).json()["content"].encode()
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(body).hexdigest()
    assert await archived(api_settings, job_id) == body


async def test_no_history_payload_carries_log_text(
    client: httpx.AsyncClient,
    temporal_env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    new_job_id,
    job_id: int,
) -> None:
    """After PUT and POST /logs/multi, no event of the workflows holds the text; the DB does."""
    other = next(new_job_id)
    marker, multi_marker = f"secret-text-{job_id}", f"multi-text-{other}"
    assert (await client.put(f"/logs/{job_id}", content=marker.encode())).status_code == 200
    multi = await client.post("/logs/multi", json=[{"job_id": other, "content": multi_marker}])
    assert multi.status_code == 204
    assert (await client.get(f"/logs/{other}")).json()["content"] == multi_marker
    for job, text in ((job_id, marker), (other, multi_marker)):
        events = await assert_eventually(partial(histories, temporal_env.client, job))
        assert any(f"log-{job}".encode() in e for e in events)  # the scan sees the payloads
        assert not [e for e in events if text.encode() in e]
    left = await pool.fetchval(
        "SELECT count(*) FROM log_uploads WHERE job_id = ANY($1::bigint[])", [job_id, other]
    )
    assert left == 0
