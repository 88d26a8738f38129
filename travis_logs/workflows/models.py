"""Dataclasses at the LogWorkflow boundary, shared by the workflow, ingest and the API.

Content never travels through Temporal: signals carry part numbers and sizes only (claim
check: the parts are in PostgreSQL). Durations are integers of milliseconds because the
default converter cannot serialise `timedelta`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from temporalio.common import SearchAttributeKey

WORKFLOW_TYPE = "LogWorkflow"
SIGNAL_PARTS = "parts"
UPDATE_REPLACE = "replace_content"
UPDATE_FORCE_AGGREGATE = "force_aggregate"
UPDATE_REARCHIVE = "rearchive"
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


@dataclass
class LogTimings:
    """The lifecycle's clocks, from LOGS_* settings."""

    quiet_period_ms: int = 10_000
    force_after_ms: int = 3 * 3600 * 1000
    purge_delay_ms: int = 0


@dataclass
class ReplaceContentInput:
    """What `PUT /logs/:job_id` does: replace the content (None clears it), maybe a removal."""

    content: str | None
    removed_by: int | None = None


@dataclass
class ReplaceContentResult:
    log_id: int
    archived: bool = False


@dataclass
class LogWorkflowState:
    """Everything a run knows, carried through continue-as-new (the workflow issue extends it)."""

    final_number: int | None = None
    known_numbers: list[int] = field(default_factory=list)
    archive_attempts: int = 0


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
SEARCH_ATTRIBUTES: list[SearchAttributeKey[Any]] = [JOB_ID, LOG_STATE, ARCHIVE_ATTEMPTS]
