"""What reconciliation does for one log, decided from its database row alone (no I/O).

A log is done when its row holds no content and it has no stored parts: there is nothing
left to aggregate, archive or purge (purged, or cleared by PUT /logs). Any other log needs
its workflow; when none is open, reconciliation starts one. A plain start is enough when the
workflow will move by itself (a final part is stored, or parts are still arriving); where it
would wait for a final part that never comes (travis-logs deleted the parts when it
aggregated), the start carries the `force_aggregate` update.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from travis_logs.logrow import RowText


class LogDbState(StrEnum):
    """Where a log's row stands, in travis-logs' terms (reference §5-§7)."""

    PARTS_ONLY = "parts_only"
    FINAL_NOT_AGGREGATED = "final_not_aggregated"
    AGGREGATED_NOT_ARCHIVED = "aggregated_not_archived"
    ARCHIVED_NOT_VERIFIED = "archived_not_verified"
    VERIFIED_NOT_PURGED = "verified_not_purged"
    PURGED = "purged"
    EMPTY = "empty"  # no content, no parts, never purged: cleared, or a row of no part


class Action(StrEnum):
    NONE = "none"  # done: nothing to do
    START = "start"  # start the workflow; it proceeds by itself
    FORCE = "force_aggregate"  # start it with the force_aggregate update


DONE_STATES = frozenset({LogDbState.PURGED, LogDbState.EMPTY})


@dataclass(frozen=True)
class LogRow:
    """The columns of a `logs` row that decide, plus its stored parts."""

    log_id: int
    job_id: int
    text: RowText
    parts: int = 0
    final_number: int | None = None
    newest_part_age_s: float | None = None  # database clock; None without parts
    archived: bool = False  # archived_at is set
    archive_verified: bool = False


@dataclass(frozen=True)
class Plan:
    state: LogDbState
    action: Action
    reason: str


def state_of(row: LogRow) -> LogDbState:
    """The row's lifecycle state; parts waiting to be merged come first."""
    if row.parts:
        if row.final_number is not None:
            return LogDbState.FINAL_NOT_AGGREGATED
        return LogDbState.PARTS_ONLY
    if not row.text.has_text:
        return LogDbState.PURGED if row.text.purged else LogDbState.EMPTY
    if row.archive_verified:
        return LogDbState.VERIFIED_NOT_PURGED
    if row.archived:
        return LogDbState.ARCHIVED_NOT_VERIFIED
    return LogDbState.AGGREGATED_NOT_ARCHIVED


def classify(row: LogRow, force_after_s: float) -> Plan:
    """What to do for `row` when its workflow is not open."""
    state = state_of(row)
    if state in DONE_STATES:
        return Plan(state, Action.NONE, "nothing left to aggregate, archive or purge")
    if state is LogDbState.FINAL_NOT_AGGREGATED:
        return Plan(state, Action.START, "final part stored: aggregates after the quiet period")
    if state is LogDbState.PARTS_ONLY:
        age = row.newest_part_age_s or 0.0
        if age < force_after_s:
            return Plan(state, Action.START, f"parts arriving (newest {age:.0f} s old)")
        return Plan(state, Action.FORCE, f"no final part, newest part {age:.0f} s old")
    # Content but no parts: archive, verify (SHA-256, which travis-logs never checked), purge.
    return Plan(state, Action.FORCE, "content to archive, verify and purge")
