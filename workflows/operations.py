"""What the operator commands ask of log workflows: selection, lifecycle updates, status.

Updates go with update-with-start (`USE_EXISTING`): a log whose run has closed gets a new run,
which reads the log's row first, so `rearchive` works on a done log as well as on a stuck one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.service import RPCError, RPCStatusCode

from travis_logs.settings import Settings
from workflows.client import start_operation
from workflows.models import (
    QUERY_STATUS,
    UPDATE_FORCE_AGGREGATE,
    UPDATE_REARCHIVE,
    WORKFLOW_TYPE,
    ForceAggregateInput,
    LifecycleResult,
    LogWorkflowState,
    RearchiveInput,
    workflow_id,
)
from workflows.reconcile import job_of

UPDATES = {"rearchive": UPDATE_REARCHIVE, "force-aggregate": UPDATE_FORCE_AGGREGATE}
UPDATE_TIMEOUT = timedelta(seconds=60)
QUERY_TIMEOUT = timedelta(seconds=5)


@dataclass
class UpdateOutcome:
    job_id: int
    ok: bool
    state: str = ""
    archived: bool = False
    error: str = ""


async def select_jobs(client: Client, query: str) -> list[int]:
    """Job ids of the log workflows a visibility query selects, each once, in order."""
    full = f"WorkflowType = '{WORKFLOW_TYPE}' AND ({query})"
    seen: dict[int, None] = {}
    async for wf in client.list_workflows(full):
        job = job_of(wf.id)
        if job is not None:
            seen.setdefault(job)
    return list(seen)


def _input(command: str, reason: str) -> RearchiveInput | ForceAggregateInput:
    return RearchiveInput(reason) if command == "rearchive" else ForceAggregateInput(reason)


async def lifecycle_update(
    client: Client, settings: Settings, job_id: int, command: str, reason: str
) -> UpdateOutcome:
    """Run `rearchive` or `force-aggregate` on the job's workflow, starting one if needed."""
    try:
        result: LifecycleResult = await client.execute_update_with_start_workflow(
            UPDATES[command],
            _input(command, reason),
            start_workflow_operation=start_operation(settings, job_id),
            result_type=LifecycleResult,
            rpc_timeout=UPDATE_TIMEOUT,
        )
    except WorkflowUpdateFailedError as err:  # the validator refused, e.g. nothing to archive
        return UpdateOutcome(job_id, ok=False, error=str(err.cause or err))
    except RPCError as err:
        return UpdateOutcome(job_id, ok=False, error=f"{err.status.name}: {err.message}")
    return UpdateOutcome(job_id, ok=True, state=result.state, archived=result.archived)


@dataclass
class WorkflowView:
    """What Temporal knows of a job's log: the latest run and its status query."""

    status: str | None = None  # RUNNING, COMPLETED, TERMINATED, ...; None: no run known
    run_id: str | None = None
    state: LogWorkflowState | None = None
    query_error: str = ""
    # A run in its start delay (workflows/client.py `start_delay`) has run no code yet, so it
    # cannot answer a query: until when it sleeps unless the final part's signal wakes it.
    asleep_until: datetime | None = None


async def workflow_view(client: Client, job_id: int) -> WorkflowView:
    handle = client.get_workflow_handle(workflow_id(job_id))
    try:
        described: WorkflowExecutionDescription = await handle.describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return WorkflowView()
        raise
    view = WorkflowView(status=described.status.name if described.status else None)
    view.run_id = described.run_id
    if await _asleep(handle, described):
        view.asleep_until = described.execution_time
        return view
    try:
        view.state = await handle.query(
            QUERY_STATUS, result_type=LogWorkflowState, rpc_timeout=QUERY_TIMEOUT
        )
    except Exception as err:  # a closed run needs a worker to replay it; say so, go on
        view.query_error = str(err) or type(err).__name__
    return view


async def _asleep(
    handle: WorkflowHandle[Any, Any], described: WorkflowExecutionDescription
) -> bool:
    """Running, due to start later (its execution time), and no workflow task completed yet:
    the execution time stays when a signal-with-start ends the delay early, the history says."""
    due = described.execution_time
    if described.status != WorkflowExecutionStatus.RUNNING or due is None:
        return False
    if due <= datetime.now(UTC):
        return False
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            return False
    return True
