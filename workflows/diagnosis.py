"""One line saying where a log is and why, from its workflow, its row and its S3 object (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from activities.reconcile_plan import DONE_STATES, LogDbState, LogRow, state_of
from workflows.models import LogState, LogWorkflowState


class Level(StrEnum):
    OK = "ok"  # done, or on its way
    ATTENTION = "attention"  # an operator has to act
    MISSING = "missing"  # no such log


@dataclass(frozen=True)
class Archive:
    """The object at jobs/<job_id>/log.txt as read back, and what the row recorded of it."""

    size: int | None  # None: no object
    sha256: str | None = None
    recorded_sha256: str | None = None  # logs.archive_sha256


@dataclass(frozen=True)
class Verdict:
    level: Level
    line: str


def _archive_text(a: Archive) -> str:
    if a.size is None:
        return "no archive in S3"
    return f"archive {a.size} bytes, SHA-256 {(a.sha256 or '?')[:12]}"


def _asleep(until: datetime) -> str:
    return (
        f"{LogState.STREAMING}: parts arriving; its run sleeps until the final part's signal, "
        f"or until {until:%Y-%m-%d %H:%M:%S} UTC, when it checks whether the log went silent"
    )


def _running(s: LogWorkflowState, job_id: int) -> Verdict:
    state, err = s.state, f" ({s.stats.last_error})" if s.stats.last_error else ""
    lines = {
        LogState.STREAMING: f"{state}: parts arriving ({s.stats.parts_signalled} signalled), "
        "waiting for the final part (or the sweeper's force check)",
        LogState.QUIET: f"{state}: final part {s.final_number} stored, aggregating once the "
        "quiet period has passed",
        LogState.REARCHIVE_BACKOFF: f"{state}: verification failed{err}, archiving again "
        "after a backoff",
        LogState.VERIFY_FAILED: f"{state}: gave up after {s.stats.archive_attempts} archive "
        f"attempts{err}; the log stays in the database until `travis-logs rearchive {job_id}`",
        LogState.ARCHIVED: f"{state}: archive verified, purging after the purge delay",
        LogState.DONE: f"{state}: purged, the verified archive holds the log "
        "(the run stays open only while parts are missing)",
    }
    line = lines.get(
        state, f"{state}: the pipeline is running (archive attempt {s.stats.archive_attempts}){err}"
    )
    level = Level.ATTENTION if state == LogState.VERIFY_FAILED else Level.OK
    return Verdict(level, line)


def diagnose(
    job_id: int,
    row: LogRow | None,
    archive: Archive,
    status: str | None,
    state: LogWorkflowState | None,
    asleep_until: datetime | None = None,
) -> Verdict:
    """Where the log is and why; the workflow's word wins while a run is open."""
    if row is None and status is None:
        return Verdict(Level.MISSING, f"unknown: no log row and no workflow for job {job_id}")
    if status == "RUNNING" and state is not None:
        return _running(state, job_id)
    if status == "RUNNING" and asleep_until is not None:
        return Verdict(Level.OK, _asleep(asleep_until))
    if row is None:
        return Verdict(Level.ATTENTION, f"orphan: a {status} workflow but no log row")
    db = state_of(row)
    if db in DONE_STATES:
        return _settled(db, archive)
    closed = f"its last run is {status}" if status else "it has no workflow"
    return Verdict(
        Level.ATTENTION,
        f"stuck: the log is {db} but {closed}; `travis-logs reconcile` or the sweeper starts it",
    )


def _settled(db: LogDbState, archive: Archive) -> Verdict:
    if db is LogDbState.EMPTY:
        return Verdict(Level.OK, "cleared: no content and no parts, nothing to archive")
    if archive.size is None:
        return Verdict(Level.ATTENTION, "purged, but there is no archive in S3")
    if archive.recorded_sha256 and archive.recorded_sha256 != archive.sha256:
        return Verdict(
            Level.ATTENTION,
            f"done, but the archive changed since it was verified ({_archive_text(archive)})",
        )
    return Verdict(Level.OK, f"done: purged, {_archive_text(archive)}")
