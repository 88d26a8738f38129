"""Every change to a log's state, and every question about it, as plain functions.

The workflow is their only caller and the state's only writer goes through them: no
activity, timer or Temporal call happens here, so each transition is tested without a
server (tests/workflows/test_state.py). Each function either changes the state (an `on_*`
or verb, returning nothing) or answers a question (returning a value, changing nothing);
tests/workflows/test_state_shape.py holds that over this module's syntax tree. Times are
passed in as epoch milliseconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from enum import Enum

from activities.models import (
    AggregateResult,
    LogSnapshot,
    PurgeResult,
    RedactionRecord,
    RedactLogResult,
    ReplaceResult,
)
from workflows.models import (
    MAX_SHOWN_REDACTIONS,
    LogState,
    LogWorkflowState,
    PartRef,
    Phase,
    RequestKind,
    Ticket,
    Trigger,
)


class ForceVerdict(Enum):
    """What a force check's read of the database decided."""

    KEEP_WAITING = "keep waiting"  # a final part is known now, or parts are still coming
    AGGREGATE = "aggregate"  # silent for longer than the force timeout
    NOTHING_LEFT = "nothing left"  # silent, and every stored part is in the content


def on_parts(s: LogWorkflowState, refs: Iterable[PartRef], now_ms: int) -> None:
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


def on_force_wake(s: LogWorkflowState) -> None:
    """The sweeper found the log silent in the database: look again at once."""
    s.force_check = True


def adopt(s: LogWorkflowState, snapshot: LogSnapshot, now_ms: int) -> None:
    """Take what the database knows: final number, archive state, newest part's time."""
    s.log_id = snapshot.log_id
    if snapshot.final_number is not None:
        s.final_number = max(snapshot.final_number, s.final_number or 0)
    s.content_version = max(s.content_version, snapshot.content_version)
    if snapshot.verified_version is not None:
        s.verified_version = snapshot.verified_version
    s.purged = snapshot.purged
    _remember(s, snapshot.redactions)
    if snapshot.newest_part_age_ms is not None:
        s.last_part_at_ms = max(s.last_part_at_ms, now_ms - snapshot.newest_part_age_ms)


def on_force_check(s: LogWorkflowState, snapshot: LogSnapshot, now_ms: int) -> None:
    """The log's row was read for a force check: take what it says."""
    s.force_check = False
    s.stats.force_checks += 1
    adopt(s, snapshot, now_ms)


def force_verdict(s: LogWorkflowState, snapshot: LogSnapshot, force_after_ms: int) -> ForceVerdict:
    """After `on_force_check`: aggregate, wait on, or stop."""
    if s.final_number is not None:
        return ForceVerdict.KEEP_WAITING
    age = snapshot.newest_part_age_ms
    if age is not None and age < force_after_ms:
        return ForceVerdict.KEEP_WAITING  # parts came since the sweep looked
    if snapshot.pending_parts == 0:
        return ForceVerdict.NOTHING_LEFT
    return ForceVerdict.AGGREGATE


def on_nothing_left(s: LogWorkflowState) -> None:
    """Silent, and every stored part is in the content: nothing is left to do."""
    s.settled_revision = s.revision


def enter(s: LogWorkflowState, phase: Phase) -> None:
    s.phase = phase


def on_step(s: LogWorkflowState, step: LogState) -> None:
    s.state = step


def on_due(s: LogWorkflowState, trigger: Trigger) -> None:
    """The log is due for a round, for `trigger`'s sake."""
    s.trigger = trigger
    s.force_check = False


def deadline_ms(s: LogWorkflowState, span_ms: int) -> int:
    """`span_ms` after the newest part: the quiet period's and the force timeout's end."""
    return s.last_part_at_ms + span_ms


# --- requests -------------------------------------------------------------------------------


def request(s: LogWorkflowState, kind: RequestKind) -> None:
    """An operator's (or PUT's) request; a re-archive earns a fresh set of attempts."""
    if kind is RequestKind.REARCHIVE:
        s.mismatches = 0
    _queue(s, kind)


def _queue(s: LogWorkflowState, kind: RequestKind) -> None:
    s.tickets += 1
    s.pending.append(Ticket(s.tickets, kind))


def newest_ticket(s: LogWorkflowState) -> Ticket:
    """The ticket the last request was given."""
    return next(t for t in [*s.pending, *s.taken] if t.number == s.tickets)


def requested(s: LogWorkflowState) -> bool:
    return bool(s.pending)


def take_requests(s: LogWorkflowState) -> None:
    """A round starts: it takes every pending request."""
    s.taken, s.pending = s.taken + s.pending, []


def rewrite_taken(s: LogWorkflowState) -> bool:
    """The round in flight took a request to write the archive again."""
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
    s.stats.elided_bytes, s.stats.elided_parts = result.elided_bytes, result.elided_parts
    if result.merged:
        s.purged = False
    if result.verified_version is not None and s.verified_version is None:
        s.verified_version = result.verified_version


def is_verified(s: LogWorkflowState, version: int) -> bool:
    return s.verified_version is not None and s.verified_version >= version


def on_archive_started(s: LogWorkflowState) -> None:
    """One more archive attempt (ArchiveAttempts)."""
    s.stats.archive_attempts += 1


def gave_up(s: LogWorkflowState, max_attempts: int) -> bool:
    """As many archives in a row failed as are allowed: verify_failed."""
    return s.mismatches >= max_attempts


def on_mismatch(s: LogWorkflowState, error: str) -> None:
    """An archive that was refused or did not read back as written."""
    s.mismatches += 1
    s.stats.last_error = error


def on_upload_failed(s: LogWorkflowState, error: str) -> None:
    """The upload's first attempt failed; it goes on as an activity (not a mismatch)."""
    s.stats.last_error = f"upload: {error}"


def on_verified(s: LogWorkflowState, version: int, now_ms: int, purge_delay_ms: int) -> None:
    s.verified_version = version
    s.purge_due_ms = now_ms + purge_delay_ms


def purge_due_ms(s: LogWorkflowState, now_ms: int, purge_delay_ms: int) -> int:
    """When the verified archive may be purged (set when it was verified, kept across runs)."""
    return now_ms + purge_delay_ms if s.purge_due_ms is None else s.purge_due_ms


def on_purged(s: LogWorkflowState, result: PurgeResult) -> None:
    """Purged; or refused (the database holds something else): archive again."""
    s.purge_due_ms = None
    if not result.purged:
        on_mismatch(s, f"purge refused: {result.reason}")
        _queue(s, RequestKind.REARCHIVE)
        return
    s.purged = True


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


def on_replaced(s: LogWorkflowState, done: ReplaceResult) -> None:
    """After PUT /logs: the parts are gone, a restarted job streams from part 0 again."""
    s.log_id, s.content_version = done.log_id, done.content_version
    s.final_number = None
    s.known = set()
    s.revision += 1
    s.purged = False
    s.mismatches = 0
    request(s, RequestKind.AGGREGATE)


# --- completeness and timeline --------------------------------------------------------------


def on_completeness(s: LogWorkflowState, result: AggregateResult) -> None:
    """The aggregation's missing part numbers."""
    if result.log_id is not None:
        s.missing_parts = [list(r) for r in result.missing]


def incomplete(s: LogWorkflowState) -> bool:
    return bool(s.missing_parts)


def on_milestone(s: LogWorkflowState, name: str, now_ms: int) -> None:
    """A lifecycle step done (aggregated, archived, ...), at the workflow's clock."""
    s.stats.timeline[name] = iso_utc(now_ms)


def on_part_milestones(s: LogWorkflowState, refs: Iterable[PartRef], now_ms: int) -> None:
    """The first part and the final part, as their signals arrive (the first of each).

    Cheap once both are known: a storm of resent signals must not slow the workflow task."""
    timeline = s.stats.timeline
    if "first_part" not in timeline:
        timeline["first_part"] = iso_utc(now_ms)
    if "final_part" not in timeline and any(ref.final for ref in refs):
        timeline["final_part"] = iso_utc(now_ms)


def grace_ms(s: LogWorkflowState, grace_period_ms: int, incomplete_grace_ms: int) -> int:
    """How long the run lingers after purge: longer while parts are missing."""
    return max(grace_period_ms, incomplete_grace_ms) if s.missing_parts else grace_period_ms


def iso_utc(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds")


def on_redacted(s: LogWorkflowState, redaction_id: int, done: RedactLogResult) -> None:
    """A redaction was applied: record it; when it wrote a new version, archive that again
    (a rewrite, with a fresh set of attempts)."""
    record = RedactionRecord(
        redaction_id,
        done.requested_by,
        done.reason,
        done.applied_at_ms,
        done.occurrences,
        list(done.string_sha256),
        done.content_version if done.changed else None,
    )
    _remember(s, [record])
    if not done.changed:
        return
    on_milestone(s, "redacted", done.applied_at_ms)
    s.log_id, s.content_version = done.log_id, done.content_version
    s.purged = False
    s.revision += 1
    request(s, RequestKind.REARCHIVE)


def _remember(s: LogWorkflowState, records: list[RedactionRecord]) -> None:
    """Keep the newest redactions, each once, in the order they were applied."""
    known = {r.redaction_id for r in s.redactions}
    fresh = [r for r in records if r.redaction_id not in known]
    if fresh:
        merged = sorted([*s.redactions, *fresh], key=lambda r: r.redaction_id)
        s.redactions = merged[-MAX_SHOWN_REDACTIONS:]
