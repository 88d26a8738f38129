"""A log's run sleeps from its first part to its final part (a start delay, on the dev server).

The run exists from the first part on (listed, `LogState` streaming, its static summary), but
no workflow task runs until the final part's signal-with-start ends the delay, an update
does, or the delay (LOGS_FORCE_AFTER_S) runs out and the run checks whether the log went
silent. The Java test server ignores start delays: these tests need the dev server.
"""

from __future__ import annotations

import asyncpg
from temporalio.client import Client
from temporalio.worker import Worker

from api import uploads
from api.redactions import RedactionRequest, stage
from tests.helpers import assert_eventually, joined, log_row, open_store, store_parts
from tests.workflows.support import fast, handle_of, record, send, workflow_tasks
from travis_logs.archive_store import ArchiveStore
from travis_logs.settings import Settings
from workers.temporal_worker import build_worker, lifecycle_activities
from workflows.client import redact, replace_content
from workflows.diagnosis import Archive, Level, diagnose
from workflows.models import LogState, Trigger
from workflows.operations import workflow_view


async def test_an_asleep_log_is_listed_and_its_status_says_so(
    worker: Worker, temporal_client: Client, quick: Settings, pool: asyncpg.Pool, job_id: int
) -> None:
    """Before its final part the run has run no code (a query would wait for the delay),
    yet it is found by JobId and LogState, and `travis-logs status` says what it waits for."""
    await store_parts(pool, job_id, {0: "a\n"})
    handle = await send(temporal_client, quick, job_id, {0: "a\n"}, final=None, opens=True)
    query = f"JobId = {job_id} AND LogState = 'streaming' AND ExecutionStatus = 'Running'"

    async def listed() -> None:  # visibility is eventually consistent
        assert (await temporal_client.count_workflows(query)).count == 1

    await assert_eventually(listed)
    assert await (await handle.describe()).static_summary() == f"Log of job {job_id}"
    view = await workflow_view(temporal_client, job_id)
    assert view.status == "RUNNING" and view.state is None and view.asleep_until is not None
    verdict = diagnose(job_id, None, Archive(None), view.status, view.state, view.asleep_until)
    assert verdict.level is Level.OK and verdict.line.startswith("streaming: parts arriving")
    assert await workflow_tasks(handle) == 0

    await store_parts(pool, job_id, {1: ""}, final=1)
    await send(temporal_client, quick, job_id, {1: ""}, final=1)
    assert (await handle.result()).state == LogState.DONE
    assert (await workflow_view(temporal_client, job_id)).asleep_until is None


async def test_a_silent_log_wakes_when_its_start_delay_ends(
    temporal_client: Client, settings: Settings, pool: asyncpg.Pool, job_id: int
) -> None:
    """No final part and no sweeper: the run wakes by itself after LOGS_FORCE_AFTER_S, finds
    the log silent and archives what it has."""
    silent = fast(settings, logs_force_after_s=1)
    async with open_store(silent) as store:
        activities = lifecycle_activities(pool, store)
        async with build_worker(temporal_client, silent, activities):
            await store_parts(pool, job_id, {0: "a\n", 1: "b\n"})
            handle = await send(temporal_client, silent, job_id, {0: "a\n"}, final=None, opens=True)
            state = await handle.result()
        assert await store.fetch(job_id) == b"a\nb\n"
    assert state.state == LogState.DONE and state.trigger == Trigger.FORCE_TIMEOUT
    assert state.stats.force_checks == 1
    assert (await log_row(pool, job_id))["purged_at"] is not None
    await record(handle, "silent_woke_at_start_delay")


async def test_replace_of_an_asleep_log_completes(
    worker: Worker,
    temporal_client: Client,
    quick: Settings,
    pool: asyncpg.Pool,
    store: ArchiveStore,
    job_id: int,
) -> None:
    """PUT /logs on a streaming log whose run sleeps: the update wakes it and is answered
    once the new content is archived, not when the delay (hours) runs out."""
    await store_parts(pool, job_id, {0: "old\n"})
    await send(temporal_client, quick, job_id, {0: "old\n"}, final=None, opens=True)
    change = await uploads.stage(pool, job_id, "new ✓\n", removed_by=None)
    result = await replace_content(temporal_client, quick, job_id, change)
    assert result.archived is True
    assert await store.fetch(job_id) == "new ✓\n".encode()
    await record(handle_of(temporal_client, job_id), "replace_while_asleep")


async def test_redact_of_an_asleep_log_completes(
    worker: Worker,
    temporal_client: Client,
    quick: Settings,
    pool: asyncpg.Pool,
    store: ArchiveStore,
    job_id: int,
) -> None:
    """The redact update wakes a sleeping run as well; the masked log is archived."""
    parts = {0: "key=hunter2\n"}
    await store_parts(pool, job_id, parts)
    await send(temporal_client, quick, job_id, parts, final=None, opens=True)
    inp = await stage(pool, RedactionRequest(job_id, "ops", "leak", strings=["hunter2"]))
    result = await redact(temporal_client, quick, job_id, inp)
    assert (result.occurrences, result.changed) == (1, True)
    assert result.served and result.archived
    assert await store.fetch(job_id) == joined(parts).replace("hunter2", "*******").encode()
