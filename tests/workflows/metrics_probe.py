"""A workflow that walks LifecycleMetrics through a log's phases (module level for the sandbox)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from workflows.lifecycle_metrics import LifecycleMetrics, Phase


@activity.defn(name="probe_step")
async def probe_step() -> None:
    """Does nothing; its run makes the SDK's activity metrics appear."""


@workflow.defn(name="MetricsProbe")
class MetricsProbe:
    @workflow.run
    async def run(self) -> None:
        metrics = LifecycleMetrics()
        metrics.part(final=False)
        metrics.part(final=True)
        for phase in Phase:
            metrics.phase(phase)
        metrics.verify_failure()
        metrics.gave_up()
        metrics.attempted()
        metrics.purged()
        await workflow.execute_activity(probe_step, start_to_close_timeout=timedelta(seconds=10))
