"""LogWorkflow on the dev server with real PostgreSQL and S3 (moto): lifecycle and late parts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import Client
from temporalio.worker import Worker

from tests.helpers import assert_eventually, joined, log_row, store_parts, stored_numbers
from tests.workflows.faults import AfterActivity
from tests.workflows.support import (
    continued_state,
    fast,
    handle_of,
    local_activities,
    record,
    send,
    workflow_tasks,
)
from travis_logs.archive_store import ArchiveStore
from travis_logs.settings import Settings
from workers.temporal_worker import build_worker, lifecycle_activities
from workflows.log_workflow import LogWorkflow
from workflows.models import (
    ARCHIVE_ATTEMPTS,
    JOB_ID,
    LOG_STATE,
    LogState,
    Phase,
)

PARTS = {0: "$ make\n", 2: "ok ✓\n", 1: "building…\n", 3: "Done.\n", 4: ""}


@pytest.mark.parametrize("created", [False, True], ids=["row-existed", "row-created"])
async def test_lifecycle_archives_parts_in_order_and_purges(
    worker: Worker,
    temporal_client: Client,
    quick: Settings,
    pool: asyncpg.Pool,
    store: ArchiveStore,
    job_id: int,
    created: bool,
) -> None:
    """Parts stored out of order end up archived in number order; the row is purged. The run
    sleeps from the first part to the final one: two workflow tasks in all, the final part's
    (arm the quiet timer) and the quiet timer's (the whole pipeline). The final part's task
    reads the row first, unless the ingest said the first part's batch `created` it."""
    await store_parts(pool, job_id, PARTS, final=4)
    first = {0: PARTS[0]}
    await send(temporal_client, quick, job_id, first, final=None, opens=True, created=created)
    handle = await send(temporal_client, quick, job_id, {4: ""}, final=4)
    state = await handle.result()
    assert await workflow_tasks(handle) == 2
    pipeline = ["aggregate_log", "archive_log", "verify_archive", "purge_log"]
    assert await local_activities(handle) == ([] if created else ["inspect_log"]) + pipeline

    assert await store.fetch(job_id) == joined(PARTS).encode()
    row = await log_row(pool, job_id)
    assert row["content"] is None
    assert row["archived_at"] is not None and row["archive_verified"] is True
    assert row["purged_at"] is not None
    assert await stored_numbers(pool, job_id) == []
    assert state.state == LogState.DONE and state.stats.archive_attempts == 1
    assert state.stats.content_parts == len(PARTS)
    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(JOB_ID) == job_id
    assert attributes.get(LOG_STATE) == LogState.DONE
    assert attributes.get(ARCHIVE_ATTEMPTS) == 1
    await record(handle, "lifecycle_new_row" if created else "lifecycle")


async def test_streaming_log_is_visible_and_every_step_is_summarised(
    worker: Worker,
    temporal_client: Client,
    quick: Settings,
    pool: asyncpg.Pool,
    job_id: int,
) -> None:
    """An open log is found by JobId and LogState; its status query, static summary and
    current details tell where it is; every activity and timer in its history is summarised."""
    await store_parts(pool, job_id, {0: "a\n"})
    handle = await send(temporal_client, quick, job_id, {0: "a\n"}, final=None)

    async def streaming() -> None:
        status = await handle.query(LogWorkflow.status)
        assert status.state == LogState.STREAMING and status.stats.parts_signalled == 1
        query = f"JobId = {job_id} AND LogState = 'streaming'"
        assert (await temporal_client.count_workflows(query)).count == 1

    await assert_eventually(streaming)
    assert await (await handle.describe()).static_summary() == f"Log of job {job_id}"
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert metadata.current_details.startswith("**streaming**")
    await store_parts(pool, job_id, {1: ""}, final=1)
    await send(temporal_client, quick, job_id, {1: ""}, final=1)
    assert (await handle.result()).state == LogState.DONE
    summarised = {
        EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
        EventType.EVENT_TYPE_TIMER_STARTED,
        EventType.EVENT_TYPE_MARKER_RECORDED,
    }
    seen = 0
    async for event in handle.fetch_history_events():
        if event.event_type in summarised:
            seen += 1
            assert event.user_metadata.summary.data, EventType.Name(event.event_type)
    assert seen >= 6  # inspect, quiet timer, aggregate, upload, verify, purge


async def test_part_stored_during_the_pipeline_is_merged_before_purge(
    temporal_client: Client,
    quick: Settings,
    pool: asyncpg.Pool,
    store: ArchiveStore,
    job_id: int,
) -> None:
    """A part that arrives while the log is being archived is merged, in order, not lost."""
    early = {0: "a\n", 2: "c\n", 3: ""}

    async def late_part(_: Any) -> None:
        await store_parts(pool, job_id, {1: "b\n"})
        await send(temporal_client, quick, job_id, {1: "b\n"}, final=None)

    after_aggregate = AfterActivity("aggregate_log", late_part)
    activities = lifecycle_activities(pool, store)
    async with build_worker(temporal_client, quick, activities, interceptors=[after_aggregate]):
        await store_parts(pool, job_id, early, final=3)
        handle = await send(temporal_client, quick, job_id, early, final=3)
        state = await handle.result()
    assert after_aggregate.fired == 1
    assert await store.fetch(job_id) == b"a\nb\nc\n"
    assert await stored_numbers(pool, job_id) == []
    # The signal arrived during the pipeline's workflow task: the server refused to let the
    # run complete, and the task that followed aggregated all four parts.
    assert state.stats.content_parts == 4 and state.state == LogState.DONE
    await record(handle, "late_part_during_pipeline")


async def test_part_stored_while_the_run_purges_is_merged_by_the_same_run(
    temporal_client: Client,
    quick: Settings,
    pool: asyncpg.Pool,
    store: ArchiveStore,
    job_id: int,
) -> None:
    """Window 2 without a grace window: a part signalled during the purge's workflow task
    keeps the run from completing; the same run merges it into the archive."""
    early = {0: "a\n", 2: "c\n", 3: ""}

    async def late_part(_: Any) -> None:
        await store_parts(pool, job_id, {1: "b\n"})
        await send(temporal_client, quick, job_id, {1: "b\n"}, final=None)

    after_purge = AfterActivity("purge_log", late_part)
    activities = lifecycle_activities(pool, store)
    async with build_worker(temporal_client, quick, activities, interceptors=[after_purge]):
        await store_parts(pool, job_id, early, final=3)
        handle = await send(temporal_client, quick, job_id, early, final=3)
        first_run = (await handle.describe()).run_id
        state = await handle.result()
    assert after_purge.fired == 1
    assert await store.fetch(job_id) == b"a\nb\nc\n"
    assert await stored_numbers(pool, job_id) == []
    row = await log_row(pool, job_id)
    assert row["purged_at"] is not None and row["archive_verified"] is True
    assert state.state == LogState.DONE and state.stats.content_parts == 4
    assert (await handle.describe()).run_id == first_run
    runs = [wf async for wf in temporal_client.list_workflows(f"WorkflowId = '{handle.id}'")]
    assert len(runs) == 1


@pytest_asyncio.fixture
async def graceful(
    temporal_client: Client, settings: Settings, pool: asyncpg.Pool, store: ArchiveStore
) -> AsyncIterator[Settings]:
    """A worker whose runs keep a 10 s grace window open after purge."""
    lingering = fast(settings, logs_grace_period_s=10)
    async with build_worker(temporal_client, lingering, lifecycle_activities(pool, store)):
        yield lingering


async def test_late_part_in_the_grace_window_is_merged_in_number_order(
    graceful: Settings,
    temporal_client: Client,
    pool: asyncpg.Pool,
    store: ArchiveStore,
    job_id: int,
) -> None:
    """After purge, a late part goes into the archive at its place, by the same run."""
    early = {0: "a\n", 2: "c\n", 3: ""}
    await store_parts(pool, job_id, early, final=3)
    handle = await send(temporal_client, graceful, job_id, early, final=3)

    async def purged() -> None:
        assert (await handle.query(LogWorkflow.status)).state == LogState.DONE

    await assert_eventually(purged)
    first_run = (await handle.describe()).run_id
    await store_parts(pool, job_id, {1: "b\n"})
    await send(temporal_client, graceful, job_id, {1: "b\n"}, final=None)

    async def merged() -> None:
        assert await store.fetch(job_id) == b"a\nb\nc\n"
        row = await log_row(pool, job_id)
        assert row["purged_at"] is not None and row["archive_verified"] is True
        assert row["content"] is None

    await assert_eventually(merged)
    status = await handle.query(LogWorkflow.status)
    assert status.stats.archive_attempts == 2
    assert (await handle.describe()).run_id == first_run
    await handle.terminate("test done")


async def test_late_part_after_the_run_closed_merges_into_the_verified_archive(
    worker: Worker,
    temporal_client: Client,
    quick: Settings,
    pool: asyncpg.Pool,
    store: ArchiveStore,
    job_id: int,
) -> None:
    """A new run started by a late part reads the log, merges it in order, re-verifies."""
    early = {0: "a\n", 1: "b\n", 3: "d\n", 4: ""}
    await store_parts(pool, job_id, early, final=4)
    await (await send(temporal_client, quick, job_id, early, final=4)).result()
    assert await stored_numbers(pool, job_id) == []

    await store_parts(pool, job_id, {2: "c\n"})
    handle = await send(temporal_client, quick, job_id, {2: "c\n"}, final=None)
    state = await handle.result()
    assert state.trigger == "final part"  # known from the database, not waited for
    assert await store.fetch(job_id) == b"a\nb\nc\nd\n"
    row = await log_row(pool, job_id)
    assert row["content"] is None and row["archive_verified"] is True
    assert row["part_numbers"] == [0, 1, 2, 3, 4]
    assert await stored_numbers(pool, job_id) == []
    await record(handle, "late_part_after_close")


async def test_duplicate_part_after_purge_leaves_the_archive_unchanged(
    worker: Worker,
    temporal_client: Client,
    quick: Settings,
    pool: asyncpg.Pool,
    store: ArchiveStore,
    job_id: int,
) -> None:
    """A redelivered part whose number is archived already changes nothing and is dropped."""
    parts = {0: "a\n", 1: "b\n", 2: ""}
    await store_parts(pool, job_id, parts, final=2)
    await (await send(temporal_client, quick, job_id, parts, final=2)).result()
    archived = await store.head(job_id)
    assert archived is not None

    await store_parts(pool, job_id, {1: "B AGAIN\n"})
    handle = await send(temporal_client, quick, job_id, {1: "B AGAIN\n"}, final=None)
    state = await handle.result()
    head = await store.head(job_id)
    assert head is not None and head.etag == archived.etag
    assert await store.fetch(job_id) == b"a\nb\n"
    assert state.stats.archive_attempts == 0  # nothing was archived again
    assert await stored_numbers(pool, job_id) == []
    assert (await log_row(pool, job_id))["content"] is None


async def test_empty_log_is_archived_as_an_empty_object(
    worker: Worker,
    temporal_client: Client,
    quick: Settings,
    pool: asyncpg.Pool,
    store: ArchiveStore,
    job_id: int,
) -> None:
    """A log of one empty final part ends archived (empty), verified and purged."""
    await store_parts(pool, job_id, {0: ""}, final=0)
    state = await (await send(temporal_client, quick, job_id, {0: ""}, final=0)).result()
    assert state.state == LogState.DONE
    assert await store.fetch(job_id) == b""
    row = await log_row(pool, job_id)
    assert row["archive_verified"] is True and row["purged_at"] is not None


async def test_signal_budget_continues_as_new_without_losing_parts(
    temporal_client: Client,
    settings: Settings,
    pool: asyncpg.Pool,
    store: ArchiveStore,
    job_id: int,
) -> None:
    """Past LOGS_MAX_SIGNALS_PER_RUN signals the run continues as new, carrying its state."""
    budget = fast(settings, logs_max_signals_per_run=2)
    parts = {n: f"line {n}\n" for n in range(6)}
    async with build_worker(temporal_client, budget, lifecycle_activities(pool, store)):
        await store_parts(pool, job_id, parts)
        for n in range(5):
            await send(temporal_client, budget, job_id, {n: parts[n]}, final=None)
        await store_parts(pool, job_id, {6: ""}, final=6)
        handle = await send(temporal_client, budget, job_id, {6: ""}, final=6)
        await handle.result()
    assert await store.fetch(job_id) == joined(parts).encode()
    assert await stored_numbers(pool, job_id) == []
    carried = await continued_state(temporal_client, handle.id)
    assert carried.phase is not Phase.LOAD and len(carried.known) >= 2
    await record(handle_of(temporal_client, job_id), "continued_as_new_last_run")
