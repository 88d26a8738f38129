"""Lifecycle metrics of a log, recorded from workflow code through `workflow.metric_meter()`.

The meter is replay-safe: a replayed history records nothing again, so each histogram gets
one value per log and phase however often a worker replays it. The worker exports them with
the SDK's own metrics on TEMPORAL_METRICS_PORT (`travis_logs.temporal.metrics_runtime`),
durations in seconds. Call only from workflow code (outside it there is no meter).

LogWorkflow calls it where each milestone and verdict happens, so the metrics cannot
disagree with the state machine: every archive attempt (refused ones too), every mismatch
(a failed read-back, a refused archive or purge), every entry into verify_failed.
Durations count from the moment the run learnt of the final part (or, for the first part,
from the run's start; not recorded for a run that continued another). A continue-as-new
starts a fresh `LifecycleMetrics`, so a log that continues as new mid-pipeline reports its
later phases from the new run's start.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from temporalio import workflow

FIRST_PART = "travis_logs_lifecycle_first_part_seconds"
ARCHIVE_ATTEMPTS = "travis_logs_lifecycle_archive_attempts"
VERIFY_FAILURES = "travis_logs_lifecycle_verify_failures"
VERIFY_GAVE_UP = "travis_logs_lifecycle_verify_gave_up"


class Phase(StrEnum):
    """A step reached after the final part, and the histogram of the time it took."""

    AGGREGATED = "travis_logs_lifecycle_final_to_aggregated_seconds"
    ARCHIVED = "travis_logs_lifecycle_final_to_archived_seconds"
    VERIFIED = "travis_logs_lifecycle_final_to_verified_seconds"
    PURGED = "travis_logs_lifecycle_final_to_purged_seconds"


# Every name this module can export (the dashboard test checks its queries against them).
METRICS = frozenset({FIRST_PART, ARCHIVE_ATTEMPTS, VERIFY_FAILURES, VERIFY_GAVE_UP, *Phase})
HISTOGRAMS = frozenset({FIRST_PART, ARCHIVE_ATTEMPTS, *Phase})


class LifecycleMetrics:
    """One per run: remembers when the first and final parts came, records each phase once."""

    def __init__(self) -> None:
        info = workflow.info()
        self._started: datetime = info.start_time
        # A continued run's first signal is not the log's first part.
        self._first_seen = info.continued_run_id is not None
        self._final_at: datetime | None = None
        self._recorded: set[Phase] = set()
        self._attempts = 0

    def attempted(self) -> None:
        """An archive attempt started (whatever comes of it)."""
        self._attempts += 1

    def purged(self) -> None:
        """The log is purged: its phase, its archive attempts; a late part starts over."""
        self.phase(Phase.PURGED)
        workflow.metric_meter().create_histogram(
            ARCHIVE_ATTEMPTS, "Archive attempts until the archive verified, per log."
        ).record(self._attempts)
        self._final_at, self._recorded, self._attempts = None, set(), 0

    def part(self, *, final: bool) -> None:
        """A part signal was taken (call from the `parts` signal handler)."""
        now = workflow.now()
        if not self._first_seen:
            self._first_seen = True
            meter = workflow.metric_meter()
            meter.create_histogram_timedelta(
                FIRST_PART, "From the run's start to its first part.", "duration"
            ).record(now - self._started)
        if final and self._final_at is None:
            self._final_at = now

    def phase(self, phase: Phase) -> None:
        """`phase` was reached; recorded once per run, from the final part (or run start)."""
        if phase in self._recorded:
            return
        self._recorded.add(phase)
        since = self._final_at or self._started
        workflow.metric_meter().create_histogram_timedelta(
            phase.value, f"From the final part to {phase.name.lower()}.", "duration"
        ).record(workflow.now() - since)

    def verify_failure(self) -> None:
        """A read-back did not match what was archived, or the archive or purge was refused."""
        workflow.metric_meter().create_counter(
            VERIFY_FAILURES, "Verifications whose read-back did not match."
        ).add(1)

    def gave_up(self) -> None:
        """The log went verify_failed (max attempts reached)."""
        workflow.metric_meter().create_counter(
            VERIFY_GAVE_UP, "Logs that reached verify_failed."
        ).add(1)


# The Temporal SDK's own worker metrics that the dashboard and alerts use.
SDK_METRICS = frozenset(
    {
        "temporal_workflow_completed",
        "temporal_workflow_task_schedule_to_start_latency",
        "temporal_activity_execution_latency",
        "temporal_activity_schedule_to_start_latency",
        "temporal_worker_task_slots_available",
    }
)
