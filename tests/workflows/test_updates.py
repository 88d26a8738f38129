"""The workflow's updates on the dev server: PUT /logs (update-with-start), force, re-archive."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ActivityError
from temporalio.worker import Worker

from api.uploads import stage
from tests.helpers import assert_eventually, log_row, open_store, store_parts
from tests.workflows.faults import AfterActivity, corrupt_archive
from tests.workflows.support import continued_state, fast, handle_of, record, send
from travis_logs.archive_store import ArchiveStore
from travis_logs.settings import Settings
from workers.temporal_worker import build_worker, lifecycle_activities
from workflows.client import replace_content
from workflows.log_workflow import LogWorkflow
from workflows.models import (
    LOG_STATE,
    UPDATE_FORCE_AGGREGATE,
    UPDATE_REARCHIVE,
    ForceAggregateInput,
    LifecycleResult,
    LogState,
    Phase,
    RearchiveInput,
    ReplaceContentInput,
)
from workflows.operations import lifecycle_update

PARTS = {0: "a\n", 1: "b\n", 2: ""}


async def finished_log(client: Client, settings: Settings, pool: asyncpg.Pool, job_id: int) -> None:
    await store_parts(pool, job_id, PARTS, final=2)
    await (await send(client, settings, job_id, PARTS, final=2)).result()


async def test_put_replaces_a_purged_log_and_its_archive(
    worker: Worker,
    temporal_client: Client,
    quick: Settings,
    pool: asyncpg.Pool,
    store: ArchiveStore,
    job_id: int,
) -> None:
    """PUT on a closed log starts a run (update-with-start) and answers once archived."""
    await finished_log(temporal_client, quick, pool, job_id)
    change = await stage(pool, job_id, "replaced ✓\n", removed_by=None)
    result = await replace_content(temporal_client, quick, job_id, change)
    assert result.archived is True
    assert result.log_id == (await log_row(pool, job_id))["id"]
    assert await store.fetch(job_id) == "replaced ✓\n".encode()
    handle = handle_of(temporal_client, job_id)
    await handle.result()
    row = await log_row(pool, job_id)
    assert row["content"] is None and row["archive_verified"] is True
    assert row["final_number"] is None and row["part_numbers"] == []
    await record(handle, "replace_content")


async def test_clearing_with_removed_by_deletes_the_archive(
    worker: Worker,
    temporal_client: Client,
    quick: Settings,
    pool: asyncpg.Pool,
    store: ArchiveStore,
    job_id: int,
) -> None:
    """An emptied (removed) log is not served from S3 any more, and the row says who."""
    await finished_log(temporal_client, quick, pool, job_id)
    result = await replace_content(
        temporal_client, quick, job_id, ReplaceContentInput(None, removed_by=7)
    )
    assert result.archived is False
    assert await store.fetch(job_id) is None
    handle = handle_of(temporal_client, job_id)
    assert (await handle.result()).state == LogState.REMOVED
    row = await log_row(pool, job_id)
    assert row["content"] is None and row["purged_at"] is None
    assert row["removed_by"] == 7 and row["removed_at"] is not None
    assert row["archived_at"] is None and row["archive_version"] is None


async def test_restarted_job_after_clear_archives_only_the_new_log(
    worker: Worker,
    temporal_client: Client,
    quick: Settings,
    pool: asyncpg.Pool,
    store: ArchiveStore,
    job_id: int,
) -> None:
    """A job restart clears the log; the new run's parts from 0 make the whole new archive."""
    await finished_log(temporal_client, quick, pool, job_id)
    await replace_content(temporal_client, quick, job_id, ReplaceContentInput(None))
    handle = handle_of(temporal_client, job_id)
    await handle.result()
    again = {0: "again\n", 1: ""}
    await store_parts(pool, job_id, again, final=1)
    await (await send(temporal_client, quick, job_id, again, final=1)).result()
    assert await store.fetch(job_id) == b"again\n"


async def test_invalid_put_is_rejected_and_the_log_carries_on(
    worker: Worker,
    temporal_client: Client,
    quick: Settings,
    pool: asyncpg.Pool,
    store: ArchiveStore,
    job_id: int,
) -> None:
    """An upload without a checksum, or whose text does not match it, is refused clearly."""
    await store_parts(pool, job_id, {0: "a\n"})
    handle = await send(temporal_client, quick, job_id, {0: "a\n"}, final=None)
    change = await stage(pool, job_id, "new\n", removed_by=None)
    unchecked = ReplaceContentInput(change.upload_id, sha256=None)
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await replace_content(temporal_client, quick, job_id, unchecked)
    assert "SHA-256" in str(failed.value.cause)
    tampered = ReplaceContentInput(change.upload_id, sha256="0" * 64)
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await replace_content(temporal_client, quick, job_id, tampered)
    assert isinstance(failed.value.cause, ActivityError)
    assert "does not match its SHA-256" in str(failed.value.cause.cause)
    await store_parts(pool, job_id, {1: ""}, final=1)
    await send(temporal_client, quick, job_id, {1: ""}, final=1)
    assert (await handle.result()).state == LogState.DONE
    assert await store.fetch(job_id) == b"a\n"


async def test_force_aggregate_does_not_wait_for_the_final_part(
    worker: Worker,
    temporal_client: Client,
    quick: Settings,
    pool: asyncpg.Pool,
    store: ArchiveStore,
    job_id: int,
) -> None:
    """An operator's force_aggregate aggregates and archives a log without a final part."""
    await store_parts(pool, job_id, {0: "a\n", 1: "b\n"})
    handle = await send(temporal_client, quick, job_id, {0: "a\n"}, final=None)
    result = await handle.execute_update(
        UPDATE_FORCE_AGGREGATE, ForceAggregateInput("test"), result_type=LifecycleResult
    )
    assert result.content_version == 1
    state = await handle.result()
    assert state.trigger == "request" and state.state == LogState.DONE
    assert await store.fetch(job_id) == b"a\nb\n"


async def test_verify_failed_keeps_the_log_until_a_rearchive_succeeds(
    temporal_client: Client, settings: Settings, pool: asyncpg.Pool, job_id: int
) -> None:
    """After max attempts the log stays unpurged as verify_failed; rearchive recovers it."""
    limited = fast(settings, logs_max_archive_attempts=2)
    async with open_store(limited) as store:
        corrupt = AfterActivity("archive_log", corrupt_archive(store), times=99)
        activities = lifecycle_activities(pool, store)
        async with build_worker(temporal_client, limited, activities, interceptors=[corrupt]):
            await store_parts(pool, job_id, PARTS, final=2)
            handle = await send(temporal_client, limited, job_id, PARTS, final=2)

            await assert_eventually(lambda: searchable_state(handle, "verify_failed"))
            row = await log_row(pool, job_id)
            assert row["content"] == "a\nb\n" and row["purged_at"] is None
            assert row["archive_verified"] is False
            assert corrupt.fired == 2

            corrupt.remaining = 0
            result = await handle.execute_update(
                UPDATE_REARCHIVE, RearchiveInput("fixed"), result_type=LifecycleResult
            )
            assert result.archived is True
            state = await handle.result()
    assert state.state == LogState.DONE and state.stats.archive_attempts == 3
    assert (await log_row(pool, job_id))["purged_at"] is not None
    await record(handle, "verify_failed_then_rearchive")


async def test_rearchive_of_a_purged_log_verifies_its_archive_again(
    worker: Worker,
    temporal_client: Client,
    quick: Settings,
    pool: asyncpg.Pool,
    store: ArchiveStore,
    job_id: int,
) -> None:
    """After purge the archive is the only copy: a rearchive reads it back against the
    recorded checksum (it is never rewritten from itself) and the log stays purged."""
    await finished_log(temporal_client, quick, pool, job_id)
    purged = await log_row(pool, job_id)
    outcome = await lifecycle_update(temporal_client, quick, job_id, "rearchive", "audit")
    assert (outcome.ok, outcome.archived) == (True, True), outcome
    row = await log_row(pool, job_id)
    assert row["purged_at"] is not None and row["content"] is None
    assert row["archive_verified"] is True and row["verified_at"] > purged["verified_at"]
    assert await store.fetch(job_id) == b"a\nb\n"


@pytest.mark.parametrize("point", ["aggregate_log", "archive_log", "verify_archive"])
async def test_rearchive_sent_mid_round_is_answered_after_a_rewrite(
    temporal_client: Client,
    settings: Settings,
    pool: asyncpg.Pool,
    store: ArchiveStore,
    job_id: int,
    point: str,
) -> None:
    """Whatever step the round in flight is at, the answer follows an archive written after
    the request (the round in flight cannot answer for it)."""
    lingering = fast(settings, logs_grace_period_s=30)  # the run outlives the round
    rewrites: list[bool] = []
    asked: list[tuple[int, asyncio.Task[LifecycleResult]]] = []

    async def note_archive(inp: Any) -> None:
        rewrites.append(inp.rewrite)

    async def send_rearchive(_: Any) -> None:
        update = handle_of(temporal_client, job_id).execute_update(
            UPDATE_REARCHIVE, RearchiveInput("mid-round"), result_type=LifecycleResult
        )
        asked.append((len(rewrites), asyncio.create_task(update)))

    # The recorder is inner: an archive that just ended is counted before the request.
    interceptors = [
        AfterActivity(point, send_rearchive),
        AfterActivity("archive_log", note_archive, times=99),
    ]
    activities = lifecycle_activities(pool, store)
    async with build_worker(temporal_client, lingering, activities, interceptors=interceptors):
        await store_parts(pool, job_id, PARTS, final=2)
        handle = await send(temporal_client, lingering, job_id, PARTS, final=2)
        await assert_eventually(lambda: _asked(asked))
        mark, update = asked[0]
        result = await update
        answered = len(rewrites)
        await handle.terminate("test done")
    if point == "archive_log":
        await record(handle, "rearchive_mid_round")
    assert result.archived and result.served
    assert True in rewrites[mark:answered], (point, mark, rewrites)
    assert await store.fetch(job_id) == b"a\nb\n"


async def _asked(asked: list[Any]) -> None:
    assert asked


async def test_verify_failed_log_continues_as_new_under_resent_signals(
    temporal_client: Client, settings: Settings, pool: asyncpg.Pool, job_id: int
) -> None:
    """Thousands of resent parts to a verify_failed log: the run continues as new (the
    signal budget), still verify_failed, still unpurged."""
    limited = fast(settings, logs_max_archive_attempts=1)
    async with open_store(limited) as store:
        corrupt = AfterActivity("archive_log", corrupt_archive(store), times=99)
        activities = lifecycle_activities(pool, store)
        async with build_worker(temporal_client, limited, activities, interceptors=[corrupt]):
            await store_parts(pool, job_id, PARTS, final=2)
            handle = await send(temporal_client, limited, job_id, PARTS, final=2)

            await assert_eventually(lambda: searchable_state(handle, "verify_failed"))
            gate = asyncio.Semaphore(50)

            async def resend(n: int) -> None:
                async with gate:
                    await send(temporal_client, limited, job_id, {n % 3: PARTS[n % 3]}, final=2)

            resent = limited.logs_max_signals_per_run + 500
            await asyncio.gather(*(resend(n) for n in range(resent)))
            carried = await continued_state(temporal_client, handle.id)
            assert carried.phase is Phase.HOLD and carried.known == {0, 1, 2}
            status = await handle_of(temporal_client, job_id).query(LogWorkflow.status)
            assert status.state == LogState.VERIFY_FAILED
            await assert_eventually(lambda: searchable_state(handle, "verify_failed"))
            await handle.terminate("test done")
    row = await log_row(pool, job_id)
    assert row["purged_at"] is None and row["content"] == "a\nb\n"
    assert corrupt.fired == 1  # resent parts are no reason to archive again


async def searchable_state(handle: WorkflowHandle[Any, Any], expected: str) -> None:
    """The run's LogState search attribute is `expected` (for assert_eventually)."""
    described = await handle.describe()
    assert described.typed_search_attributes.get(LOG_STATE) == expected
