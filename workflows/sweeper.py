"""SweeperWorkflow: one run of the durable sweeper, started by a Temporal Schedule.

Each run reconciles a bounded number of candidate logs (pages of the `reconcile_page`
activity, which keeps its place in the database between runs) and returns what it fixed,
so the Schedules page of the UI links every run to the logs it started.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, VersioningBehavior

with workflow.unsafe.imports_passed_through():
    from activities.reconcile_models import SWEEP_PAGE, FixedLog, SweepPageInput

SWEEPER_TYPE = "ReconcileSweeper"
PAGE_TIMEOUT = timedelta(minutes=5)
# A page that keeps failing waits for the next scheduled run instead of piling up retries.
PAGE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_attempts=3)


@dataclass
class SweepInput:
    max_logs: int = 5000
    page_size: int = 500


@dataclass
class SweepResult:
    """What one run did; `fixed` names every log it started."""

    scanned: int = 0
    pages: int = 0
    open: int = 0
    failed: int = 0
    wrapped: bool = False  # reached the end of the table: the next run starts from the top
    fixed: list[FixedLog] = field(default_factory=list)


# Each scheduled run is short and new: it starts on the current build and stays there.
@workflow.defn(name=SWEEPER_TYPE, versioning_behavior=VersioningBehavior.PINNED)
class SweeperWorkflow:
    """Reconcile up to `max_logs` candidate logs, page by page."""

    @workflow.run
    async def run(self, inp: SweepInput) -> SweepResult:
        result = SweepResult()
        while result.scanned < inp.max_logs and not result.wrapped:
            size = min(inp.page_size, inp.max_logs - result.scanned)
            page = await workflow.execute_activity(
                SWEEP_PAGE.name,
                SweepPageInput(page_size=size),
                result_type=SWEEP_PAGE.result_type,
                start_to_close_timeout=PAGE_TIMEOUT,
                retry_policy=PAGE_RETRY,
                summary=f"reconcile page {result.pages + 1} ({size} logs at most)",
            )
            result.pages += 1
            result.scanned += page.scanned
            result.open += page.open
            result.failed += page.failed
            result.wrapped = page.wrapped
            result.fixed.extend(page.fixed)
            workflow.set_current_details(_details(result))
        return result


def _details(r: SweepResult) -> str:
    fixed = ", ".join(str(f.job_id) for f in r.fixed[:20]) or "none"
    more = f" and {len(r.fixed) - 20} more" if len(r.fixed) > 20 else ""
    return (
        f"**{len(r.fixed)} fixed** of {r.scanned} candidates in {r.pages} pages "
        f"({r.open} open, {r.failed} failed)\n\njobs: {fixed}{more}"
    )
