"""Reconciliation's way into Temporal: which log workflows are open, and starting the others.

Starts use `WorkflowIDConflictPolicy.FAIL`, so a log whose run is open is never started or
updated twice, even when visibility (eventually consistent) has not listed that run yet:
the visibility query only saves the start attempts it can.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from temporalio.client import (
    Client,
    WorkflowUpdateStage,
)
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.reconcile_plan import Action
from travis_logs.ratelimit import RateLimiter
from travis_logs.settings import Settings
from workflows.client import start_operation, start_options, workflow_input
from workflows.models import (
    SIGNAL_FORCE_CHECK,
    UPDATE_FORCE_AGGREGATE,
    WORKFLOW_TYPE,
    ForceAggregateInput,
    ForceCheckSignal,
    workflow_id,
)

log = logging.getLogger(__name__)

# Visibility queries stay short: this many workflow ids in one `WorkflowId IN (...)`.
_IDS_PER_QUERY = 100


def open_query(job_ids: Sequence[int]) -> str:
    ids = ", ".join(f"'{workflow_id(j)}'" for j in job_ids)
    return (
        f"WorkflowType = '{WORKFLOW_TYPE}' AND ExecutionStatus = 'Running'"
        f" AND WorkflowId IN ({ids})"
    )


def job_of(wf_id: str) -> int | None:
    prefix, _, number = wf_id.partition("-")
    return int(number) if prefix == "log" and number.isdigit() else None


class TemporalFixer:
    """`LogFixer` over a Temporal client: visibility to skip open runs, FAIL-policy starts."""

    def __init__(self, client: Client, settings: Settings, limiter: RateLimiter) -> None:
        self._client = client
        self._settings = settings
        self._limiter = limiter

    async def open_jobs(self, job_ids: Sequence[int]) -> set[int]:
        found: set[int] = set()
        for i in range(0, len(job_ids), _IDS_PER_QUERY):
            query = open_query(job_ids[i : i + _IDS_PER_QUERY])
            try:
                async for wf in self._client.list_workflows(query):
                    job = job_of(wf.id)
                    if job is not None:
                        found.add(job)
            except RPCError as err:  # best effort: the FAIL-policy start is the real guard
                log.warning("visibility query failed, relying on start conflicts: %s", err)
        return found

    async def fix(self, job_id: int, action: Action) -> bool:
        await self._limiter.wait()
        try:
            if action is Action.FORCE:
                await self._force(job_id)
            else:
                await self._start(job_id)
        except WorkflowAlreadyStartedError:
            return False
        except RPCError as err:
            if err.status == RPCStatusCode.ALREADY_EXISTS:
                return False
            raise
        return True

    async def wake(self, job_id: int) -> bool:
        """Signal the open run's force check (the run reads the log's row and decides)."""
        await self._limiter.wait()
        handle = self._client.get_workflow_handle(workflow_id(job_id))
        try:
            await handle.signal(SIGNAL_FORCE_CHECK, ForceCheckSignal(job_id))
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:  # it closed since visibility listed it
                return False
            raise
        return True

    async def _start(self, job_id: int) -> None:
        await self._client.start_workflow(
            WORKFLOW_TYPE,
            workflow_input(self._settings, job_id),
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            **start_options(self._settings, job_id),
        )

    async def _force(self, job_id: int) -> None:
        """Start the run and, in the same request, ask it to aggregate without a final part."""
        start = start_operation(self._settings, job_id, WorkflowIDConflictPolicy.FAIL)
        # Accepted is enough: the run owns the log from here on.
        await self._client.start_update_with_start_workflow(
            UPDATE_FORCE_AGGREGATE,
            ForceAggregateInput(reason="reconcile: no open workflow"),
            start_workflow_operation=start,
            wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        )
