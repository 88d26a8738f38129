"""Dataclasses at the LogWorkflow boundary, shared by the workflow, ingest and the API.

Content never travels through Temporal: signals carry part numbers and sizes only (claim
check: the parts are in PostgreSQL). Durations are integers of milliseconds because the
default converter cannot serialise `timedelta`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

from activities.models import RedactionRecord

WORKFLOW_TYPE = "LogWorkflow"
SIGNAL_PARTS = "parts"
UPDATE_REPLACE = "replace_content"
UPDATE_FORCE_AGGREGATE = "force_aggregate"
UPDATE_REARCHIVE = "rearchive"
UPDATE_REDACT = "redact"
SIGNAL_FORCE_CHECK = "force_check"
QUERY_STATUS = "status"


def workflow_id(job_id: int) -> str:
    """The business id of a job's log workflow: `log-<job_id>`."""
    return f"log-{job_id}"


@dataclass
class PartRef:
    """A stored part, as the workflow learns of it: number, byte size, final flag."""

    number: int
    size: int
    final: bool = False


@dataclass
class PartsSignal:
    """Part transitions the database insert reported as new (first, final, after final)."""

    job_id: int
    refs: list[PartRef] = field(default_factory=list)
    # The log's first part, and no final part known: the run it starts may sleep until the
    # final part's signal (a start delay, workflows/client.py). The workflow ignores it.
    opens: bool = False
    # The batch that stored this first part created the log's row: the row holds nothing
    # the run needs before its first aggregation, so the run does not read it first
    # (LogWorkflow._load). Only the ingest's own send sets it, never a resend from the outbox.
    created: bool = False


@dataclass
class ForceCheckSignal:
    """The sweeper found the log silent in the database: read it again and decide."""

    job_id: int


@dataclass
class LogTimings:
    """The lifecycle's clocks and limits, from LOGS_* settings."""

    quiet_period_ms: int = 10_000
    force_after_ms: int = 3 * 3600 * 1000
    purge_delay_ms: int = 0
    grace_period_ms: int = 0
    incomplete_grace_ms: int = 3 * 3600 * 1000
    rearchive_backoff_ms: int = 1_000
    max_archive_attempts: int = 5
    heartbeat_timeout_ms: int = 30_000
    max_signals_per_run: int = 2_000


@dataclass
class ReplaceContentInput:
    """What `PUT /logs/:job_id` does: replace the content, or clear it, maybe as a removal.

    The new text is not here (claim check): the API stored it as row `upload_id` of
    `log_uploads`, with its hex SHA-256, which the replace activity checks. No upload clears.
    """

    upload_id: int | None
    sha256: str | None = None
    removed_by: int | None = None

    @property
    def clears(self) -> bool:
        """True when the log is emptied instead of replaced."""
        return self.upload_id is None

    def validate(self) -> None:
        """Refuse what cannot be applied, before the update is accepted."""
        if self.removed_by is not None and self.removed_by < 1:
            raise ValueError(f"removed_by must be a user id, got {self.removed_by}")
        if not self.clears and not self.checksum_ok():
            raise ValueError("an upload needs the hex SHA-256 of its content")

    def checksum_ok(self) -> bool:
        """Whether `sha256` has the shape of a hex SHA-256 (64 lowercase hex digits)."""
        digest = self.sha256 or ""
        return len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)


@dataclass
class ReplaceContentResult:
    """The log's id, and whether the new content was archived and verified before returning."""

    log_id: int
    archived: bool = False


@dataclass
class ForceAggregateInput:
    """An operator's request to aggregate now, without waiting for the final part."""

    reason: str = ""


@dataclass
class RearchiveInput:
    """An operator's request to archive and verify the log again (e.g. after verify_failed)."""

    reason: str = ""


@dataclass
class LifecycleResult:
    """Where a forced aggregation or re-archive left the log when the update returned.

    `served` is False only when the update stopped waiting (UPDATE_WAIT) before the
    pipeline round that took the request finished.
    """

    state: str
    content_version: int
    archived: bool
    served: bool = True


@dataclass
class RedactInput:
    """Apply redaction `redaction_id`: a `log_redactions` row the API or CLI stored (claim
    check: the strings to mask are in PostgreSQL, never in the update)."""

    redaction_id: int

    def validate(self) -> None:
        if self.redaction_id < 1:
            raise ValueError(f"redaction_id must be a row id, got {self.redaction_id}")


@dataclass
class RedactResult:
    """The applied redaction, and whether the log's archive holds it (verified) on return.

    `changed` False: nothing was left to mask, no new version or archive was made.
    """

    redaction_id: int
    occurrences: int
    changed: bool
    content_version: int
    archived: bool
    served: bool = True


class LogState(StrEnum):
    """The log's exact step (status query, current details), in lifecycle order.

    The `LogState` search attribute holds `searchable(step)`, upserted only for the steps a
    run rests in across workflow tasks. The happy path (quiet period, then aggregate, upload,
    verify and purge in one workflow task) upserts once, `done`, after the start set
    `streaming`; a quiet log is still searchable as `streaming` (its final part is known,
    so the sweeper leaves it alone).
    """

    STREAMING = "streaming"  # parts arriving, no final part yet
    QUIET = "quiet"  # final part stored: waiting out the quiet period
    AGGREGATING = "aggregating"
    UPLOADING = "uploading"  # the upload's first attempt, a local activity
    ARCHIVING = "archiving"  # the upload retried as a heartbeating activity (it failed once)
    VERIFYING = "verifying"
    REARCHIVE_BACKOFF = "rearchive_backoff"  # verify mismatch: waiting to archive again
    VERIFY_FAILED = "verify_failed"  # gave up after max attempts; never purged like this
    ARCHIVED = "archived"  # verified, waiting out the purge delay
    PURGING = "purging"
    DONE = "done"  # purged: the archive holds the log
    CLEARED = "cleared"  # PUT /logs emptied it: no content, no archive
    REMOVED = "removed"  # the same with removed_by set


# Steps inside one workflow task, or short: the search attribute keeps what it said before.
_PASSING = {
    LogState.QUIET,
    LogState.AGGREGATING,
    LogState.UPLOADING,
    LogState.VERIFYING,
    LogState.PURGING,
}


def searchable(step: LogState) -> LogState | None:
    """The `LogState` search attribute's value for a step; None: leave it as it is.

    The steps a run rests in are searchable: `archiving` (the upload retrying, or the purge
    delay), `rearchive_backoff`, `verify_failed`, `done`, `cleared`, `removed`, `streaming`.
    """
    if step in _PASSING:
        return None
    return LogState.ARCHIVING if step is LogState.ARCHIVED else step


class Phase(StrEnum):
    """Where `LogWorkflow.run` is; each phase method returns the next (see the diagram)."""

    LOAD = "load"  # a fresh run reads the log's row first
    WAIT = "wait"  # for the final part (or force timeout, or a request), then the quiet period
    SETTLE = "settle"  # aggregate, archive until verified, purge delay, purge
    HOLD = "hold"  # verify_failed: wait for a new part or an operator's request
    LINGER = "linger"  # the grace window after purge
    CLOSE = "close"  # let running update handlers finish, then end
    END = "end"


class Trigger(StrEnum):
    """Why the last pipeline round ran."""

    NONE = ""
    FINAL_PART = "final part"
    FORCE_TIMEOUT = "force timeout"
    REQUEST = "request"


class RequestKind(StrEnum):
    """Work an update (or a refused purge) asks for, without waiting for parts or timers."""

    AGGREGATE = "aggregate"  # force_aggregate, PUT /logs
    REARCHIVE = "rearchive"  # write the archive again even when it is verified


@dataclass
class Ticket:
    """One request; served once a pipeline round that took it has finished."""

    number: int
    kind: RequestKind


@dataclass
class LogStats:
    """What a run reports and nothing decides on (status query, current details)."""

    parts_signalled: int = 0
    force_checks: int = 0  # the sweeper's wakes that read the database clock
    aggregations: int = 0
    archive_attempts: int = 0
    content_bytes: int = 0
    content_parts: int = 0
    # Past LOGS_MAX_BYTES: what the log left out between its head and tail (0: whole).
    elided_bytes: int = 0
    elided_parts: int = 0
    last_error: str = ""
    # The lifecycle by the workflow's clock, as UTC ISO timestamps: first_part, final_part,
    # aggregated, archived, verified, purged, replaced (the newest of each).
    timeline: dict[str, str] = field(default_factory=dict)


@dataclass
class LogWorkflowState:
    """Everything a run decides on, carried through continue-as-new; the `status` query.

    `revision` counts changes to the log (new parts, replaced content); a round that started
    at one revision only purges if no change came in meanwhile. Versions are the database's
    `logs.content_version`. Requests are tickets: `pending` ones wait for the next round,
    `taken` ones ride in the current round, and every ticket up to `served` is done.
    """

    phase: Phase = Phase.LOAD
    state: LogState = LogState.STREAMING  # the exact step
    log_id: int | None = None
    final_number: int | None = None
    # Part numbers signalled since the last purge: a resent signal for one is a no-op.
    known: set[int] = field(default_factory=set)
    last_part_at_ms: int = 0  # epoch ms of the newest part known (deadlines count from it)
    revision: int = 0
    settled_revision: int = 0
    content_version: int = 0
    verified_version: int | None = None  # content version the verified archive holds
    mismatches: int = 0  # consecutive failed verifications (or archive refusals)
    purged: bool = False
    purge_due_ms: int | None = None  # end of the purge delay of the verified archive
    force_check: bool = False  # the sweeper asked for a read of the database
    trigger: Trigger = Trigger.NONE
    tickets: int = 0  # the last ticket issued
    pending: list[Ticket] = field(default_factory=list)
    taken: list[Ticket] = field(default_factory=list)
    served: int = 0
    stats: LogStats = field(default_factory=LogStats)
    # Part numbers the last aggregation found missing, as [first, last] ranges (empty:
    # complete); the `LogIncomplete` search attribute says whether there are any.
    missing_parts: list[list[int]] = field(default_factory=list)
    # The newest redactions (at most MAX_SHOWN_REDACTIONS; the database keeps every one).
    redactions: list[RedactionRecord] = field(default_factory=list)


MAX_SHOWN_REDACTIONS = 20


@dataclass
class LogWorkflowInput:
    """The input of every run; `state` is set only by continue-as-new."""

    job_id: int
    timings: LogTimings = field(default_factory=LogTimings)
    state: LogWorkflowState | None = None


# Custom search attributes (registered by `travis-logs dev` and the test fixtures). SQL
# visibility has only 3 Int slots per namespace: JobId and ArchiveAttempts take two of them.
JOB_ID = SearchAttributeKey.for_int("JobId")
LOG_STATE = SearchAttributeKey.for_keyword("LogState")
ARCHIVE_ATTEMPTS = SearchAttributeKey.for_int("ArchiveAttempts")
# Set (true) once an aggregation finds part numbers missing, and back to false once none are:
# `LogIncomplete = true` lists the incomplete logs. A complete log never sets it.
LOG_INCOMPLETE = SearchAttributeKey.for_bool("LogIncomplete")
SEARCH_ATTRIBUTES: list[SearchAttributeKey[Any]] = [
    JOB_ID,
    LOG_STATE,
    ARCHIVE_ATTEMPTS,
    LOG_INCOMPLETE,
]


def start_search_attributes(job_id: int) -> TypedSearchAttributes:
    """Set when a run starts (signal- or update-with-start), so no upsert is spent on them."""
    return TypedSearchAttributes(
        [SearchAttributePair(JOB_ID, job_id), SearchAttributePair(LOG_STATE, LogState.STREAMING)]
    )
