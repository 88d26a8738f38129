"""Every change to a log's state, as plain functions of (state, what happened).

The workflow is their only caller and the state's only writer goes through them: no
activity, timer or Temporal call happens here, so each transition is tested without a
server (tests/workflows/test_state.py). Times are passed in as epoch milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum

from activities.models import AggregateResult, LogSnapshot, PurgeResult, ReplaceResult
from workflows.models import (
    LogState,
    LogWorkflowState,
    PartRef,
    Phase,
    RequestKind,
    Ticket,
    Trigger,
)


class ForceVerdict(Enum):
    """What the force timer's read of the database decided."""

    KEEP_WAITING = "keep waiting"  # a final part is known now, or parts are still coming
    AGGREGATE = "aggregate"  # silent for longer than the force timeout
    NOTHING_LEFT = "nothing left"  # silent, and every stored part is in the content


def on_parts(s: LogWorkflowState, refs: Iterable[PartRef], now_ms: int) -> bool:
    """Part transitions: new numbers move the quiet deadline; resent ones change nothing."""
    fresh = False
    for ref in refs:
        if ref.final:
            s.final_number = max(ref.number, s.final_number or ref.number)
        if ref.number in s.known:
            continue
        s.known.add(ref.number)
        s.stats.parts_signalled += 1
        fresh = True
    if fresh:
        s.revision += 1
        s.last_part_at_ms = now_ms
    return fresh


def adopt(s: LogWorkflowState, snapshot: LogSnapshot, now_ms: int) -> None:
    """Take what the database knows: final number, archive state, newest part's time."""
    s.log_id = snapshot.log_id
    if snapshot.final_number is not None:
        s.final_number = max(snapshot.final_number, s.final_number or 0)
    s.content_version = max(s.content_version, snapshot.content_version)
    if snapshot.verified_version is not None:
        s.verified_version = snapshot.verified_version
    s.purged = snapshot.purged
    if snapshot.newest_part_age_ms is not None:
        s.last_part_at_ms = max(s.last_part_at_ms, now_ms - snapshot.newest_part_age_ms)


def on_force_check(
    s: LogWorkflowState, snapshot: LogSnapshot, now_ms: int, force_after_ms: int
) -> ForceVerdict:
    """The force timer fired and the log's row was read: aggregate, wait on, or stop."""
    s.stats.force_checks += 1
    adopt(s, snapshot, now_ms)
    if s.final_number is not None:
        return ForceVerdict.KEEP_WAITING
    age = snapshot.newest_part_age_ms
    if age is not None and age < force_after_ms:
        return ForceVerdict.KEEP_WAITING  # the deadline moved with the newest part
    if snapshot.pending_parts == 0:
        s.settled_revision = s.revision
        return ForceVerdict.NOTHING_LEFT
    return ForceVerdict.AGGREGATE


def enter(s: LogWorkflowState, phase: Phase) -> None:
    s.phase = phase


def on_step(s: LogWorkflowState, step: LogState) -> None:
    s.state = step


def due(s: LogWorkflowState, trigger: Trigger) -> Phase:
    """The log is due for a round, for `trigger`'s sake."""
    s.trigger = trigger
    return Phase.SETTLE


def deadline_ms(s: LogWorkflowState, span_ms: int) -> int:
    """`span_ms` after the newest part: the quiet period's and the force timeout's end."""
    return s.last_part_at_ms + span_ms


# --- requests -------------------------------------------------------------------------------


def request(s: LogWorkflowState, kind: RequestKind) -> Ticket:
    """An operator's (or PUT's) request; a re-archive earns a fresh set of attempts."""
    if kind is RequestKind.REARCHIVE:
        s.mismatches = 0
    return _queue(s, kind)


def _queue(s: LogWorkflowState, kind: RequestKind) -> Ticket:
    s.tickets += 1
    ticket = Ticket(s.tickets, kind)
    s.pending.append(ticket)
    return ticket


def requested(s: LogWorkflowState) -> bool:
    return bool(s.pending)


def take_requests(s: LogWorkflowState) -> bool:
    """A round starts: it takes every pending request; True when one asks for a rewrite."""
    s.taken, s.pending = s.taken + s.pending, []
    return any(t.kind is RequestKind.REARCHIVE for t in s.taken)


def serve(s: LogWorkflowState) -> None:
    """The round finished the work its requests asked for."""
    s.served = max([s.served, *(t.number for t in s.taken)])
    s.taken = []


def requeue(s: LogWorkflowState) -> None:
    """The round was abandoned: its requests go to the next one, first."""
    s.pending, s.taken = s.taken + s.pending, []


def is_served(s: LogWorkflowState, ticket: Ticket) -> bool:
    return s.served >= ticket.number


def changed(s: LogWorkflowState, revision: int) -> bool:
    """A part or a request came in since the round started at `revision`."""
    return s.revision != revision or requested(s)


def has_work(s: LogWorkflowState) -> bool:
    return requested(s) or s.revision != s.settled_revision


# --- the pipeline ---------------------------------------------------------------------------


def on_aggregated(s: LogWorkflowState, result: AggregateResult) -> None:
    s.stats.aggregations += 1
    s.log_id, s.content_version = result.log_id, result.content_version
    s.stats.content_bytes, s.stats.content_parts = result.size, result.parts
    if result.merged or result.from_archive:  # the content is back in the database
        s.purged = False
    if result.verified_version is not None and s.verified_version is None:
        s.verified_version = result.verified_version


def is_verified(s: LogWorkflowState, version: int) -> bool:
    return s.verified_version is not None and s.verified_version >= version


def on_archive_started(s: LogWorkflowState) -> int:
    """The attempt's number (ArchiveAttempts)."""
    s.stats.archive_attempts += 1
    return s.stats.archive_attempts


def on_mismatch(s: LogWorkflowState, error: str) -> None:
    """An archive that was refused or did not read back as written."""
    s.mismatches += 1
    s.stats.last_error = error


def on_verified(s: LogWorkflowState, version: int, now_ms: int, purge_delay_ms: int) -> None:
    s.verified_version = version
    s.purge_due_ms = now_ms + purge_delay_ms


def purge_due_ms(s: LogWorkflowState, now_ms: int, purge_delay_ms: int) -> int:
    """When the verified archive may be purged (set when it was verified, kept across runs)."""
    if s.purge_due_ms is None:
        s.purge_due_ms = now_ms + purge_delay_ms
    return s.purge_due_ms


def on_purged(s: LogWorkflowState, result: PurgeResult) -> bool:
    """False when the database refused (it holds something else): archive again."""
    s.purge_due_ms = None
    if not result.purged:
        on_mismatch(s, f"purge refused: {result.reason}")
        _queue(s, RequestKind.REARCHIVE)
        return False
    s.purged = True
    return True


def on_settled(s: LogWorkflowState, revision: int) -> None:
    """Close the round at `revision`."""
    s.settled_revision = revision
    s.mismatches = 0
    # Purged parts are gone from the database: a signal for one of their numbers now
    # means a newly stored part (a redelivery), which the next aggregation sorts out.
    s.known = set()


def on_retry(s: LogWorkflowState) -> None:
    """verify_failed ended by a new part or a request: a fresh set of attempts."""
    s.mismatches = 0


def on_forced_without_final(s: LogWorkflowState, now_ms: int) -> bool:
    """After a forced round without a final part, unsignalled parts may still come: True
    restarts the force clock instead of closing."""
    if s.final_number is not None or s.trigger is not Trigger.FORCE_TIMEOUT:
        return False
    s.last_part_at_ms = now_ms
    return True


def on_replaced(s: LogWorkflowState, done: ReplaceResult) -> Ticket:
    """After PUT /logs: the parts are gone, a restarted job streams from part 0 again."""
    s.log_id, s.content_version = done.log_id, done.content_version
    s.final_number = None
    s.known = set()
    s.revision += 1
    s.purged = False
    s.mismatches = 0
    return request(s, RequestKind.AGGREGATE)
