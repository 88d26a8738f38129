"""Temporal client helpers for the processes that talk to log workflows (ingest, API)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from travis_logs.settings import Settings
from workflows.models import (
    SIGNAL_PARTS,
    UPDATE_REDACT,
    UPDATE_REPLACE,
    WORKFLOW_TYPE,
    LogTimings,
    LogWorkflowInput,
    PartsSignal,
    RedactInput,
    RedactResult,
    ReplaceContentInput,
    ReplaceContentResult,
    start_search_attributes,
    workflow_id,
)


def timings(settings: Settings) -> LogTimings:
    return LogTimings(
        quiet_period_ms=int(settings.logs_quiet_period_s * 1000),
        force_after_ms=int(settings.logs_force_after_s * 1000),
        purge_delay_ms=int(settings.logs_purge_delay_s * 1000),
        grace_period_ms=int(settings.logs_grace_period_s * 1000),
        incomplete_grace_ms=int(settings.logs_incomplete_grace_s * 1000),
        rearchive_backoff_ms=int(settings.logs_rearchive_backoff_s * 1000),
        max_archive_attempts=settings.logs_max_archive_attempts,
        heartbeat_timeout_ms=int(settings.logs_heartbeat_timeout_s * 1000),
        max_signals_per_run=settings.logs_max_signals_per_run,
    )


def workflow_input(settings: Settings, job_id: int) -> LogWorkflowInput:
    return LogWorkflowInput(job_id=job_id, timings=timings(settings))


def start_options(settings: Settings, job_id: int) -> dict[str, Any]:
    """What every start of a job's run carries: its id, queue, summary and search attributes."""
    return {
        "id": workflow_id(job_id),
        "task_queue": settings.temporal_task_queue,
        "static_summary": f"Log of job {job_id}",
        "search_attributes": start_search_attributes(job_id),
    }


def start_operation(
    settings: Settings,
    job_id: int,
    conflict: WorkflowIDConflictPolicy = WorkflowIDConflictPolicy.USE_EXISTING,
) -> WithStartWorkflowOperation[Any, Any]:
    """The start half of an update-with-start for the job's run."""
    return WithStartWorkflowOperation(
        WORKFLOW_TYPE,
        workflow_input(settings, job_id),
        id_conflict_policy=conflict,
        **start_options(settings, job_id),
    )


def start_delay(settings: Settings, signal: PartsSignal) -> timedelta | None:
    """How long a run started by `signal` sleeps before its first workflow task.

    A log's first part starts its run with a delay of LOGS_FORCE_AFTER_S: the run exists at
    once (listed, `LogState` streaming, found by the sweeper and by update-with-start), but
    no workflow task runs until the final part's signal-with-start, which ends the delay, or
    an update, or the delay's end, when the run checks whether the log went silent. So a
    log's lifecycle is two workflow tasks, and no start task waits on the task queue while
    the job is still running. Every other signal starts (or wakes) a run at once.
    """
    return timedelta(seconds=settings.logs_force_after_s) if signal.opens else None


async def signal_parts(client: Client, settings: Settings, signal: PartsSignal) -> None:
    """Signal-with-start: one RPC, durable once it returns; starts a run when none is open."""
    await client.start_workflow(
        WORKFLOW_TYPE,
        workflow_input(settings, signal.job_id),
        start_signal=SIGNAL_PARTS,
        start_signal_args=[signal],
        start_delay=start_delay(settings, signal),
        **start_options(settings, signal.job_id),
    )


async def replace_content(
    client: Client, settings: Settings, job_id: int, inp: ReplaceContentInput
) -> ReplaceContentResult:
    """Run the replace update, starting the workflow first when no run is open."""
    result: ReplaceContentResult = await client.execute_update_with_start_workflow(
        UPDATE_REPLACE,
        inp,
        start_workflow_operation=start_operation(settings, job_id),
        result_type=ReplaceContentResult,
        rpc_timeout=timedelta(seconds=30),
    )
    return result


async def redact(client: Client, settings: Settings, job_id: int, inp: RedactInput) -> RedactResult:
    """Run the redact update (claim check: a `log_redactions` row), starting a run if needed."""
    result: RedactResult = await client.execute_update_with_start_workflow(
        UPDATE_REDACT,
        inp,
        start_workflow_operation=start_operation(settings, job_id),
        result_type=RedactResult,
        rpc_timeout=timedelta(seconds=60),
    )
    return result
