"""Records LogWorkflow's lifecycle metrics from outside its code: a worker interceptor.

It watches what the workflow already does (the `parts` signal, the results of its aggregate,
archive, verify and purge activities, the rearchive update) and records the phases through
`LifecycleMetrics`, inside the workflow and so replay-safe. The workflow itself needs no
metric calls; if it ever makes them, drop this interceptor from the worker. Archive
attempts are counted per run: a log that continued as new mid-pipeline reports only the
attempts of its last run.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow
from temporalio.worker import (
    ExecuteWorkflowInput,
    HandleSignalInput,
    HandleUpdateInput,
    Interceptor,
    StartActivityInput,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

with workflow.unsafe.imports_passed_through():
    from activities.models import AGGREGATE_LOG, ARCHIVE_LOG, PURGE_LOG, VERIFY_ARCHIVE
    from workflows.lifecycle_metrics import LifecycleMetrics, Phase
    from workflows.models import (
        SIGNAL_PARTS,
        UPDATE_REARCHIVE,
        WORKFLOW_TYPE,
        LogTimings,
        LogWorkflowInput,
    )


class LifecycleMetricsInterceptor(Interceptor):
    """Add to the worker's interceptors; acts on LogWorkflow runs only."""

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _Inbound


class _Tracker:
    """What one run has seen: archives since the last purge, failed verifications in a row."""

    def __init__(self) -> None:
        self._metrics: LifecycleMetrics | None = None
        self.max_attempts = LogTimings().max_archive_attempts
        self.archives = 0
        self.mismatches = 0

    @property
    def metrics(self) -> LifecycleMetrics:
        if self._metrics is None:  # created inside the run, where workflow.info() works
            self._metrics = LifecycleMetrics()
        return self._metrics

    def finished(self, activity: str, result: Any) -> None:
        """An activity of the pipeline returned `result`."""
        m = self.metrics
        if activity == AGGREGATE_LOG.name:
            m.phase(Phase.AGGREGATED)
        elif activity == ARCHIVE_LOG.name:
            self.archives += 1
            m.phase(Phase.ARCHIVED)
        elif activity == VERIFY_ARCHIVE.name:
            self._verified(bool(getattr(result, "verified", False)))
        elif activity == PURGE_LOG.name and getattr(result, "purged", False):
            m.phase(Phase.PURGED)
            m.archive_attempts(self.archives)
            m.reset()
            self.archives = 0

    def _verified(self, ok: bool) -> None:
        if ok:
            self.mismatches = 0
            self.metrics.phase(Phase.VERIFIED)
            return
        self.mismatches += 1
        self.metrics.verify_failure()
        if self.mismatches == self.max_attempts:
            self.metrics.gave_up()


def _applies() -> bool:
    return workflow.info().workflow_type == WORKFLOW_TYPE


class _Inbound(WorkflowInboundInterceptor):
    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        self._tracker = _Tracker()
        super().init(_Outbound(outbound, self._tracker))

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        arg = input.args[0] if input.args else None
        if isinstance(arg, LogWorkflowInput):
            self._tracker.max_attempts = arg.timings.max_archive_attempts
        return await super().execute_workflow(input)

    async def handle_signal(self, input: HandleSignalInput) -> None:
        if input.signal == SIGNAL_PARTS and _applies() and input.args:
            refs = getattr(input.args[0], "refs", [])
            self._tracker.metrics.part(final=any(getattr(r, "final", False) for r in refs))
        await super().handle_signal(input)

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        if input.update == UPDATE_REARCHIVE:
            self._tracker.mismatches = 0  # a fresh attempt budget, as the workflow grants
        return await super().handle_update_handler(input)


class _Outbound(WorkflowOutboundInterceptor):
    def __init__(self, next: WorkflowOutboundInterceptor, tracker: _Tracker) -> None:
        super().__init__(next)
        self._tracker = tracker

    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        return self._watch(input.activity, super().start_activity(input))

    def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
        return self._watch(input.activity, super().start_local_activity(input))

    def _watch(
        self, activity: str, handle: workflow.ActivityHandle[Any]
    ) -> workflow.ActivityHandle[Any]:
        if _applies():

            def done(task: workflow.ActivityHandle[Any]) -> None:
                if task.cancelled() or task.exception() is not None:
                    return
                try:
                    self._tracker.finished(activity, task.result())
                except Exception as err:  # a metric must never fail the log's workflow task
                    workflow.logger.warning("lifecycle metrics: %r", err)

            handle.add_done_callback(done)
        return handle
