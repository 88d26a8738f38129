"""Inputs and results of the sweeper's activity (no I/O: the sweeper workflow imports them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from activities.models import ActivityRef


@dataclass
class FixedLog:
    """A log reconciliation acted on (or, in a dry run, would have)."""

    job_id: int
    state: str  # LogDbState
    action: str  # Action
    outcome: str  # Outcome
    reason: str = ""


@dataclass
class SweepPageInput:
    page_size: int = 500
    cursor: str = "sweeper"  # the reconcile_cursor row this pass keeps its place in


@dataclass
class SweepPageResult:
    scanned: int = 0  # candidate rows read (logs with content or parts)
    wrapped: bool = False  # the pass reached the end of the table and starts over next time
    fixed: list[FixedLog] = field(default_factory=list)  # started or forced
    open: int = 0  # a workflow was open already: nothing to do
    failed: int = 0  # Temporal refused; the next run tries again


SWEEP_PAGE: ActivityRef[SweepPageInput, SweepPageResult] = ActivityRef(
    "reconcile_page", SweepPageResult
)
