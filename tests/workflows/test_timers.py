"""Every timer path of LogWorkflow on the time-skipping server (real PostgreSQL and S3).

The force check reads the database's clock, which time skipping cannot move: those tests
age the stored parts with SQL instead, and send the sweeper's wake themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import timedelta

import asyncpg
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Interceptor, Worker

from tests.helpers import assert_eventually, joined, log_row, open_store, store_parts
from tests.workflows.faults import AfterActivity, corrupt_archive
from tests.workflows.support import fast, record, send
from travis_logs.archive_store import ArchiveStore
from travis_logs.settings import Settings
from workers.temporal_worker import build_worker, lifecycle_activities
from workflows.log_workflow import LogWorkflow
from workflows.models import SIGNAL_FORCE_CHECK, ForceCheckSignal, LogState, LogWorkflowState

Handle = WorkflowHandle[LogWorkflow, LogWorkflowState]
PARTS = {0: "one\n", 1: "two\n", 2: "three\n"}


@asynccontextmanager
async def lifecycle(
    env: WorkflowEnvironment,
    settings: Settings,
    pool: asyncpg.Pool,
    interceptors: Sequence[Interceptor] = (),
) -> AsyncIterator[ArchiveStore]:
    async with open_store(settings) as store:
        activities = lifecycle_activities(pool, store)
        worker: Worker = build_worker(env.client, settings, activities, interceptors=interceptors)
        async with worker:
            yield store


async def timers(handle: Handle, summary_prefix: str) -> list[timedelta]:
    """Durations (whole seconds) of the timers whose summary starts with `summary_prefix`.

    Deadlines count from the newest part, so a timer started a few ms later is shorter.
    """
    found = []
    async for event in handle.fetch_history_events():
        if event.event_type != EventType.EVENT_TYPE_TIMER_STARTED:
            continue
        summary = event.user_metadata.summary.data.decode().strip('"')
        if summary.startswith(summary_prefix):
            fire = event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
            found.append(timedelta(seconds=round(fire.total_seconds())))
    return found


async def finish(env: WorkflowEnvironment, handle: Handle) -> LogWorkflowState:
    """Skip time until the run closes, then its result.

    Only handles returned by the environment's own start_workflow skip time in result();
    the ingest's signal-with-start helper returns none, so time is skipped explicitly.
    """
    for _ in range(200):
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            return await handle.result()
        await env.sleep(600)
    raise AssertionError("the workflow did not close")


async def state_is(handle: Handle, state: str) -> LogWorkflowState:
    async def check() -> LogWorkflowState:
        status = await handle.query(LogWorkflow.status)
        assert status.state == state
        return status

    return await assert_eventually(check)


async def test_quiet_period_holds_aggregation_back(
    time_skipping_env: WorkflowEnvironment, settings: Settings, pool: asyncpg.Pool, job_id: int
) -> None:
    """Nothing is aggregated before the quiet period after the final part has passed."""
    quick = fast(settings, logs_quiet_period_s=10)
    async with lifecycle(time_skipping_env, quick, pool) as store:
        await store_parts(pool, job_id, PARTS, final=2)
        handle = await send(time_skipping_env.client, quick, job_id, PARTS, final=2)
        await state_is(handle, LogState.QUIET)
        await time_skipping_env.sleep(5)
        assert (await log_row(pool, job_id))["aggregated_at"] is None
        assert (await finish(time_skipping_env, handle)).state == LogState.DONE
        assert await store.fetch(job_id) == joined(PARTS).encode()
    assert await timers(handle, "quiet period") == [timedelta(seconds=10)]


async def test_late_part_moves_the_quiet_deadline_with_one_rearmed_timer(
    time_skipping_env: WorkflowEnvironment, settings: Settings, pool: asyncpg.Pool, job_id: int
) -> None:
    """A part 7 s into a 10 s quiet period moves the deadline; the timer re-arms once, 7 s."""
    quick = fast(settings, logs_quiet_period_s=10)
    early = {0: "a\n", 1: "b\n", 3: "d\n"}
    async with lifecycle(time_skipping_env, quick, pool) as store:
        await store_parts(pool, job_id, early, final=3)
        handle = await send(time_skipping_env.client, quick, job_id, early, final=3)
        await state_is(handle, LogState.QUIET)
        await time_skipping_env.sleep(7)
        await store_parts(pool, job_id, {2: "c\n"})
        await send(time_skipping_env.client, quick, job_id, {2: "c\n"}, final=None)
        await time_skipping_env.sleep(7)
        assert (await log_row(pool, job_id))["aggregated_at"] is None
        assert (await finish(time_skipping_env, handle)).state == LogState.DONE
        assert await store.fetch(job_id) == b"a\nb\nc\nd\n"
    assert await timers(handle, "quiet period") == [timedelta(seconds=10), timedelta(seconds=7)]


async def force_check(env: WorkflowEnvironment, handle: Handle, job_id: int) -> None:
    """What the sweeper sends a run whose log it found silent (workflows/reconcile.py)."""
    await env.client.get_workflow_handle(handle.id).signal(
        SIGNAL_FORCE_CHECK, ForceCheckSignal(job_id)
    )


async def test_force_check_aggregates_a_log_that_went_silent(
    time_skipping_env: WorkflowEnvironment, settings: Settings, pool: asyncpg.Pool, job_id: int
) -> None:
    """No final part and no part for longer than the force timeout: the sweeper's wake
    aggregates it; no timer waited for it in the run."""
    quick = fast(settings, logs_force_after_s=3 * 3600)
    async with lifecycle(time_skipping_env, quick, pool) as store:
        await store_parts(pool, job_id, PARTS, age_s=4 * 3600)
        handle = await send(time_skipping_env.client, quick, job_id, {0: PARTS[0]}, final=None)
        await state_is(handle, LogState.STREAMING)
        await force_check(time_skipping_env, handle, job_id)
        state = await finish(time_skipping_env, handle)
        assert state.trigger == "force timeout" and state.final_number is None
        assert state.stats.force_checks == 1
        assert await store.fetch(job_id) == joined(PARTS).encode()
        assert (await log_row(pool, job_id))["purged_at"] is not None
    assert await timers(handle, "") == []
    await record(handle, "force_timeout")


async def test_force_check_leaves_a_log_whose_parts_keep_coming(
    time_skipping_env: WorkflowEnvironment, settings: Settings, pool: asyncpg.Pool, job_id: int
) -> None:
    """A wake for a log whose newest part is recent changes nothing; a later one, once the
    parts went silent, aggregates."""
    quick = fast(settings, logs_force_after_s=3 * 3600)
    async with lifecycle(time_skipping_env, quick, pool) as store:
        await store_parts(pool, job_id, PARTS)
        handle = await send(time_skipping_env.client, quick, job_id, {0: PARTS[0]}, final=None)
        await state_is(handle, LogState.STREAMING)
        await force_check(time_skipping_env, handle, job_id)

        async def checked() -> None:
            status = await handle.query(LogWorkflow.status)
            assert status.stats.force_checks == 1 and status.state == LogState.STREAMING

        await assert_eventually(checked)
        assert (await log_row(pool, job_id))["aggregated_at"] is None
        await pool.execute(
            "UPDATE log_parts SET created_at = created_at - interval '4 hours'"
            " WHERE log_id = (SELECT id FROM logs WHERE job_id = $1)",
            job_id,
        )
        await force_check(time_skipping_env, handle, job_id)
        assert (await finish(time_skipping_env, handle)).trigger == "force timeout"
        assert await store.fetch(job_id) == joined(PARTS).encode()


async def test_verify_mismatch_rearchives_after_doubling_backoff(
    time_skipping_env: WorkflowEnvironment, settings: Settings, pool: asyncpg.Pool, job_id: int
) -> None:
    """Two corrupted archives: re-archived after 60 s, then 120 s; the third is verified."""
    quick = fast(settings, logs_rearchive_backoff_s=60)
    async with open_store(quick) as corrupter_store:
        corrupt = AfterActivity("archive_log", corrupt_archive(corrupter_store), times=2)
        async with lifecycle(time_skipping_env, quick, pool, [corrupt]) as store:
            await store_parts(pool, job_id, PARTS, final=2)
            handle = await send(time_skipping_env.client, quick, job_id, PARTS, final=2)
            state = await finish(time_skipping_env, handle)
            assert state.stats.archive_attempts == 3 and state.state == LogState.DONE
            assert await store.fetch(job_id) == joined(PARTS).encode()
    backoffs = await timers(handle, "re-archive backoff")
    assert backoffs == [timedelta(seconds=60), timedelta(seconds=120)]
    await record(handle, "rearchive_backoff")


async def test_purge_waits_for_the_purge_delay(
    time_skipping_env: WorkflowEnvironment, settings: Settings, pool: asyncpg.Pool, job_id: int
) -> None:
    """A verified archive is purged only after LOGS_PURGE_DELAY_S."""
    quick = fast(settings, logs_purge_delay_s=3600)
    async with lifecycle(time_skipping_env, quick, pool):
        await store_parts(pool, job_id, PARTS, final=2)
        handle = await send(time_skipping_env.client, quick, job_id, PARTS, final=2)
        await state_is(handle, LogState.ARCHIVED)
        await time_skipping_env.sleep(1800)
        row = await log_row(pool, job_id)
        assert row["archive_verified"] is True and row["content"] == joined(PARTS)
        assert (await finish(time_skipping_env, handle)).state == LogState.DONE
        assert (await log_row(pool, job_id))["content"] is None
    assert await timers(handle, "purge delay") == [timedelta(hours=1)]
