"""The sweeper Schedule: created by the worker, its run revives a log whose run was terminated."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import httpx
import pytest_asyncio
from temporalio.client import Client, ScheduleActionExecutionStartWorkflow, ScheduleHandle
from temporalio.service import RPCError

from tests.helpers import assert_eventually, free_port
from tests.workers.operations_support import Adopted, adopted_database
from tests.workflows.support import handle_of
from travis_logs.settings import Settings
from workers.temporal_worker import serve
from workflows.client import signal_parts
from workflows.models import LogState, PartRef, PartsSignal
from workflows.schedule import ensure_sweeper_schedule
from workflows.sweeper import SweepResult


@pytest_asyncio.fixture
async def adopted(settings: Settings, new_job_id: Iterator[int]) -> AsyncIterator[Adopted]:
    async with adopted_database(settings, new_job_id) as db:
        # The schedule only runs when the test triggers it.
        db.settings = db.settings.model_copy(
            update={
                "sweeper_interval_s": 3600,
                "worker_metrics_port": free_port(),
                "temporal_metrics_port": free_port(),
            }
        )
        yield db


@contextlib.asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[None]:
    """`travis-logs worker` as its entry point runs it, until the block ends."""
    stop = asyncio.Event()
    task = asyncio.create_task(serve(settings, stop))
    try:
        yield
    finally:
        stop.set()
        await task


async def _schedule(client: Client, settings: Settings) -> ScheduleHandle:
    handle = client.get_schedule_handle(settings.sweeper_schedule_id)
    try:
        await handle.describe()
    except RPCError as err:
        raise AssertionError(f"no schedule yet: {err}") from err
    return handle


async def _last_run(client: Client, handle: ScheduleHandle) -> SweepResult:
    actions = (await handle.describe()).info.recent_actions
    assert actions
    action = actions[-1].action
    assert isinstance(action, ScheduleActionExecutionStartWorkflow)
    run = client.get_workflow_handle(
        action.workflow_id, run_id=action.first_execution_run_id, result_type=SweepResult
    )
    result: SweepResult = await run.result()
    return result


async def _scrape(port: int | None) -> str:
    async with httpx.AsyncClient() as http:
        return (await http.get(f"http://127.0.0.1:{port}/metrics")).text


async def _metrics_exported(settings: Settings) -> None:
    """The worker's two endpoints: sweeper counters and gauges; SDK and lifecycle metrics."""
    ours = await _scrape(settings.worker_metrics_port)
    assert any(
        line.startswith("travis_logs_reconcile_logs_total{")
        and 'source="sweeper"' in line
        and 'outcome="forced"' in line
        for line in ours.splitlines()
    )
    assert "travis_logs_sweeper_pages_total" in ours
    assert "travis_logs_unfinished_oldest_seconds" in ours
    sdk = await _scrape(settings.temporal_metrics_port)
    assert "temporal_workflow_completed" in sdk
    assert "travis_logs_lifecycle_final_to_purged_seconds_count" in sdk


async def test_sweeper_revives_a_terminated_log(temporal_client: Client, adopted: Adopted) -> None:
    """The worker creates the Schedule; a triggered run starts the log whose workflow an
    operator terminated, which then reaches done, and lists it among what it fixed."""
    job = adopted.seeded.job("final_not_aggregated")
    slow = adopted.settings.model_copy(update={"logs_quiet_period_s": 3600})
    await signal_parts(temporal_client, slow, PartsSignal(job, [PartRef(2, 0, final=True)]))
    await handle_of(temporal_client, job).terminate("by hand")
    async with running_worker(adopted.settings):
        schedule = await assert_eventually(lambda: _schedule(temporal_client, adopted.settings))
        try:
            await schedule.trigger()
            result = await assert_eventually(
                lambda: _last_run(temporal_client, schedule), timeout=60
            )
            assert job in {f.job_id for f in result.fixed}
            assert len(result.fixed) == 7  # every adopted log not done, and none twice
            state = await handle_of(temporal_client, job).result()
            assert state.state == LogState.DONE
            await assert_eventually(lambda: _metrics_exported(adopted.settings))
        finally:
            await schedule.delete()
    assert (
        await adopted.store.fetch(job) == adopted.seeded.logs["final_not_aggregated"].log.encode()
    )


async def test_schedule_is_created_once_and_updated_after(
    temporal_client: Client, settings: Settings
) -> None:
    """A second ensure updates in place (new interval) and keeps an operator's pause."""
    mine = settings.model_copy(
        update={"sweeper_schedule_id": f"sweeper-{settings.temporal_task_queue}"}
    )
    assert await ensure_sweeper_schedule(temporal_client, mine) == "created"
    handle = temporal_client.get_schedule_handle(mine.sweeper_schedule_id)
    try:
        await handle.pause(note="operator")
        later = mine.model_copy(update={"sweeper_interval_s": 120})
        assert await ensure_sweeper_schedule(temporal_client, later) == "updated"
        described = await handle.describe()
        assert described.schedule.state.paused
        [interval] = described.schedule.spec.intervals
        assert interval.every == timedelta(seconds=120)
    finally:
        await handle.delete()
