"""LogWorkflow's paths on the time-skipping server, against an in-memory log (fake_log.py).

No PostgreSQL, RabbitMQ or S3: the three late-part windows, verify_failed with its
doubling backoff, and continue-as-new, each failing when its path regresses. The same
paths against the real services are in test_lifecycle.py, test_timers.py, test_updates.py.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from tests.workflows.fake_log import FakeLog
from tests.workflows.support import fast
from tests.workflows.test_timers import timers
from travis_logs.settings import Settings
from workers.temporal_worker import build_worker
from workflows.client import signal_parts
from workflows.log_workflow import LogWorkflow
from workflows.models import LogState, LogWorkflowState, PartRef, PartsSignal, workflow_id

JOB = 7
Handle = WorkflowHandle[LogWorkflow, LogWorkflowState]


@pytest.fixture
def log() -> FakeLog:
    return FakeLog()


def settings_for(**overrides: object) -> Settings:
    queue = f"windows-{uuid.uuid4().hex[:8]}"
    base = Settings(_env_file=None)
    return fast(base, temporal_task_queue=queue, **overrides)


async def signal(env: WorkflowEnvironment, settings: Settings, parts: dict[int, bool]) -> Handle:
    """The ingest's signal-with-start for stored parts ({number: final})."""
    refs = [PartRef(n, 2, final) for n, final in parts.items()]
    await signal_parts(env.client, settings, PartsSignal(JOB, refs))
    return env.client.get_workflow_handle(workflow_id(JOB), result_type=LogWorkflowState)


async def finish(env: WorkflowEnvironment, handle: Handle) -> LogWorkflowState:
    """Skip time until the run closes (a signal-with-start handle skips none by itself)."""
    for _ in range(100):
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            return await handle.result()
        await env.sleep(60)
    raise AssertionError("the run did not close")


def part_1_late(env: WorkflowEnvironment, settings: Settings, log: FakeLog, after: str) -> None:
    """Parts 0, 2 and the final 3 stored; part 1 stored and signalled once `after` ran."""
    log.store({0: "a\n", 2: "c\n", 3: ""}, final=3)

    async def late() -> None:
        log.store({1: "b\n"})
        await signal(env, settings, {1: False})

    log.after(after, late)


async def test_window_1_a_part_during_aggregation_is_archived_before_the_run_ends(
    time_skipping_env: WorkflowEnvironment, log: FakeLog
) -> None:
    settings = settings_for()
    part_1_late(time_skipping_env, settings, log, after="aggregate_log")
    async with build_worker(time_skipping_env.client, settings, log.activities()):
        handle = await signal(time_skipping_env, settings, {0: False, 3: True})
        state = await finish(time_skipping_env, handle)
    assert state.state == LogState.DONE and log.purged
    assert log.archive == (log.version, "a\nb\nc\n") and log.stored == {}


async def test_window_2_a_part_during_the_purge_is_merged_by_the_same_run(
    time_skipping_env: WorkflowEnvironment, log: FakeLog
) -> None:
    settings = settings_for()
    part_1_late(time_skipping_env, settings, log, after="purge_log")
    async with build_worker(time_skipping_env.client, settings, log.activities()):
        handle = await signal(time_skipping_env, settings, {0: False, 3: True})
        first_run = (await handle.describe()).run_id
        state = await finish(time_skipping_env, handle)
        assert (await handle.describe()).run_id == first_run
    assert state.state == LogState.DONE and state.stats.content_parts == 4
    assert log.archive == (log.version, "a\nb\nc\n") and log.purged and log.stored == {}


async def test_window_3_a_part_after_the_run_closed_starts_a_run_that_reads_the_row(
    time_skipping_env: WorkflowEnvironment, log: FakeLog
) -> None:
    settings = settings_for()
    log.store({0: "a\n", 2: "c\n", 3: ""}, final=3)
    async with build_worker(time_skipping_env.client, settings, log.activities()):
        first = await finish(
            time_skipping_env, await signal(time_skipping_env, settings, {0: False, 3: True})
        )
        assert first.state == LogState.DONE and log.archive == (1, "a\nc\n")
        log.store({1: "b\n"})  # no final part comes again: the row says it is known
        second = await finish(
            time_skipping_env, await signal(time_skipping_env, settings, {1: False})
        )
    assert second.trigger == "final part" and second.state == LogState.DONE
    assert log.archive == (2, "a\nb\nc\n") and log.purged


async def test_a_mismatch_archives_again_after_a_doubling_backoff(
    time_skipping_env: WorkflowEnvironment, log: FakeLog
) -> None:
    settings = settings_for(logs_rearchive_backoff_s=60)
    log.store({0: "a\n", 1: ""}, final=1)
    log.corrupt_archives = 2
    async with build_worker(time_skipping_env.client, settings, log.activities()):
        handle = await signal(time_skipping_env, settings, {0: False, 1: True})
        state = await finish(time_skipping_env, handle)
    assert state.state == LogState.DONE and state.stats.archive_attempts == 3
    assert await timers(handle, "re-archive backoff") == [
        timedelta(seconds=60),
        timedelta(seconds=120),
    ]
    assert log.archive == (1, "a\n")


async def test_verify_failed_keeps_the_log_unpurged(
    time_skipping_env: WorkflowEnvironment, log: FakeLog
) -> None:
    settings = settings_for(logs_rearchive_backoff_s=60, logs_max_archive_attempts=2)
    log.store({0: "a\n", 1: ""}, final=1)
    log.corrupt_archives = 99
    async with build_worker(time_skipping_env.client, settings, log.activities()):
        handle = await signal(time_skipping_env, settings, {0: False, 1: True})
        for _ in range(10):
            await time_skipping_env.sleep(60)
        status = await handle.query(LogWorkflow.status)
        assert status.state == LogState.VERIFY_FAILED and status.stats.archive_attempts == 2
        assert log.calls.count("archive_log") == 2 and "purge_log" not in log.calls
        assert await timers(handle, "re-archive backoff") == [timedelta(seconds=60)]
        await handle.terminate("test done")
    assert not log.purged


async def test_a_run_past_its_signal_budget_continues_as_new_and_finishes(
    time_skipping_env: WorkflowEnvironment, log: FakeLog
) -> None:
    settings = settings_for(logs_max_signals_per_run=5)
    log.store({n: f"{n}\n" for n in range(12)})
    async with build_worker(time_skipping_env.client, settings, log.activities()):
        handle = await signal(time_skipping_env, settings, {0: False})
        first_run = (await handle.describe()).run_id
        for n in range(1, 12):
            await signal(time_skipping_env, settings, {n: False})
        log.store({12: ""}, final=12)
        await signal(time_skipping_env, settings, {12: True})
        state = await finish(time_skipping_env, handle)
        assert (await handle.describe()).run_id != first_run
    assert state.state == LogState.DONE and state.known == set()
    assert state.stats.parts_signalled == 13  # carried through every continue-as-new
    assert log.archive == (log.version, "".join(f"{n}\n" for n in range(12)))
