"""A deliberately changed LogWorkflow for the replay test (its own module: the sandbox imports it)."""

from __future__ import annotations

from temporalio import workflow

from workflows.log_workflow import LogWorkflow
from workflows.models import WORKFLOW_TYPE, LogWorkflowInput, LogWorkflowState, Phase


@workflow.defn(name=WORKFLOW_TYPE)
class SkipsTheDatabaseRead(LogWorkflow):
    """A careless edit: a fresh run no longer reads the log's state first."""

    @workflow.run
    async def run(self, inp: LogWorkflowInput) -> LogWorkflowState:
        self._s.phase = Phase.WAIT
        return await super().run(inp)


@workflow.defn(name=WORKFLOW_TYPE)
class IgnoresTheStartDelay(LogWorkflow):
    """A careless edit: a run woken by its start delay's end waits on for a final part."""

    @workflow.run
    async def run(self, inp: LogWorkflowInput) -> LogWorkflowState:
        return await super().run(inp)

    def _woke_at_start_delay(self) -> bool:
        return False
