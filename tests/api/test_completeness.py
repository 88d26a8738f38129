"""Complete or flagged, and the timeline, through RabbitMQ, the ingest, LogWorkflow and the API.

travis-worker numbers a job's parts from 0 and sends an empty final part as the next number;
a log archived with a number missing between them is flagged (status query, the
`LogIncomplete` search attribute, GET /logs/:id) until the missing part arrives.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

from tests.api.test_logs import LOG_KEYS
from tests.helpers import assert_eventually
from tests.ingest.ingest_support import broker, part, publish, running_ingest
from travis_logs.archive_store import ArchiveStore
from travis_logs.settings import Settings
from workflows.log_workflow import LogWorkflow
from workflows.models import LOG_INCOMPLETE, LogState, LogWorkflowState, workflow_id

EXTRA_KEYS = {"complete", "missing_parts", "timeline", "redactions", "truncated"}
STEPS = ["first_part", "final_part", "aggregated", "archived", "verified", "purged"]


async def _purged_state(
    client: Client, pool: asyncpg.Pool, job_id: int, archived: bytes, store: ArchiveStore
) -> LogWorkflowState:
    """The run's status once the log is purged and its archive holds `archived`."""
    handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(workflow_id(job_id))

    async def done() -> LogWorkflowState:
        try:
            status = await handle.query(LogWorkflow.status)
        except RPCError as err:  # no run yet: the ingest has not signalled
            raise AssertionError(str(err)) from err
        assert status.state == LogState.DONE and not status.known
        assert await store.fetch(job_id) == archived
        row = await pool.fetchrow("SELECT purged_at FROM logs WHERE job_id = $1", job_id)
        assert row["purged_at"] is not None
        return status

    return await assert_eventually(done, timeout=30)


async def _incomplete_count(client: Client, job_id: int) -> int:
    query = f"JobId = {job_id} AND LogIncomplete = true"
    return (await client.count_workflows(query)).count


async def test_a_log_with_a_missing_part_is_flagged_until_the_part_arrives(
    client: httpx.AsyncClient,
    api_settings: Settings,
    pool: asyncpg.Pool,
    temporal_client: Client,
    store: ArchiveStore,
    job_id: int,
) -> None:
    """Archived with part 2 missing: flagged in status, visibility and GET; the late part 2
    is merged in order and clears every flag; GET keeps travis-api's fields as they were."""
    async with (
        running_ingest(api_settings, pool, temporal_client),
        broker(api_settings) as (_, topology),
    ):
        early = [part(job_id, n, f"line {n}\n") for n in (0, 1, 3)]
        await publish(topology, api_settings, [*early, part(job_id, 4, "", final=True)])
        status = await _purged_state(
            temporal_client, pool, job_id, b"line 0\nline 1\nline 3\n", store
        )
        assert status.missing_parts == [[2, 2]]

        async def listed() -> None:
            assert await _incomplete_count(temporal_client, job_id) == 1

        await assert_eventually(listed)
        flagged = (await client.get(f"/logs/{job_id}")).json()
        assert set(flagged) == LOG_KEYS | {"removed_by_id"} | EXTRA_KEYS
        assert (flagged["complete"], flagged["missing_parts"]) == (False, [[2, 2]])
        assert flagged["content"] == "line 0\nline 1\nline 3\n"

        await publish(topology, api_settings, [part(job_id, 2, "line 2\n")])
        whole = b"line 0\nline 1\nline 2\nline 3\n"

        async def cleared() -> None:
            assert await store.fetch(job_id) == whole
            status = await temporal_client.get_workflow_handle(workflow_id(job_id)).query(
                LogWorkflow.status
            )
            assert status.state == LogState.DONE and status.missing_parts == []
            assert await _incomplete_count(temporal_client, job_id) == 0

        await assert_eventually(cleared, timeout=30)

    log = (await client.get(f"/logs/{job_id}")).json()
    assert (log["complete"], log["missing_parts"], log["content"]) == (True, [], whole.decode())
    assert {k: v for k, v in log.items() if k in LOG_KEYS} == {
        **{k: v for k, v in flagged.items() if k in LOG_KEYS},
        "content": whole.decode(),
        **{k: log[k] for k in ("updated_at", "aggregated_at", "archived_at", "purged_at")},
    }
    timeline = {step: datetime.fromisoformat(log["timeline"][step]) for step in STEPS}
    assert log["timeline"]["replaced"] is None
    assert timeline["first_part"] <= timeline["final_part"] <= timeline["aggregated"]
    assert timeline["aggregated"] <= timeline["archived"] <= timeline["verified"]
    assert timeline["verified"] <= timeline["purged"]
    assert (
        await temporal_client.get_workflow_handle(workflow_id(job_id)).describe()
    ).typed_search_attributes.get(LOG_INCOMPLETE) is False
    await temporal_client.get_workflow_handle(workflow_id(job_id)).terminate("test done")


@pytest.mark.parametrize("final", [5, "last"], ids=["numbered", "last"])
async def test_worker_numbered_logs_are_never_flagged(
    client: httpx.AsyncClient,
    api_settings: Settings,
    pool: asyncpg.Pool,
    temporal_client: Client,
    store: ArchiveStore,
    job_id: int,
    final: int | str,
) -> None:
    """Parts 0..4 and the empty final part 5 (or "last"): complete, and the run never sets
    `LogIncomplete` (a complete log spends no upsert on it)."""
    async with (
        running_ingest(api_settings, pool, temporal_client),
        broker(api_settings) as (_, topology),
    ):
        worker = [part(job_id, n, f"line {n}\n") for n in range(5)]
        await publish(topology, api_settings, [*worker, part(job_id, final, "", final=True)])
        archived = "".join(f"line {n}\n" for n in range(5)).encode()
        status = await _purged_state(temporal_client, pool, job_id, archived, store)
    assert status.missing_parts == []
    assert set(status.stats.timeline) >= {"first_part", "final_part", "archived", "purged"}
    handle = temporal_client.get_workflow_handle(workflow_id(job_id))
    assert (await handle.describe()).typed_search_attributes.get(LOG_INCOMPLETE) is None
    log = (await client.get(f"/logs/{job_id}")).json()
    assert (log["complete"], log["missing_parts"]) == (True, [])
    assert all(log["timeline"][step] for step in STEPS)
