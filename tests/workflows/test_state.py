"""The state transitions of LogWorkflow, without a server: plain functions of (state, event)."""

from __future__ import annotations

from activities.models import AggregateResult, LogSnapshot, PurgeResult, ReplaceResult
from workflows import state as st
from workflows.models import (
    LogState,
    LogWorkflowState,
    PartRef,
    RequestKind,
    searchable,
)


def test_new_parts_move_the_deadline_and_resent_ones_change_nothing() -> None:
    """A new number bumps the revision and the newest part's time; a resend does not."""
    s = LogWorkflowState()
    st.on_parts(s, [PartRef(0, 5), PartRef(1, 3, final=True)], now_ms=100)
    assert (s.revision, s.last_part_at_ms, s.final_number, s.known) == (1, 100, 1, {0, 1})
    st.on_parts(s, [PartRef(1, 3, final=True)], now_ms=200)
    assert (s.revision, s.last_part_at_ms, s.stats.parts_signalled) == (1, 100, 2)
    assert st.deadline_ms(s, 50) == 150


def test_adopt_keeps_the_larger_final_number_and_the_newer_part_time() -> None:
    """What the database knows is merged in, never moving a final number or a clock back."""
    s = LogWorkflowState(final_number=9, last_part_at_ms=1_000)
    st.adopt(s, LogSnapshot(7, final_number=4, newest_part_age_ms=500, content_version=2), 1_200)
    assert (s.log_id, s.final_number, s.last_part_at_ms, s.content_version) == (7, 9, 1_000, 2)
    st.adopt(s, LogSnapshot(7, newest_part_age_ms=100, purged=True), 1_200)
    assert s.last_part_at_ms == 1_100 and s.purged


def test_force_check_waits_while_parts_come_and_stops_when_nothing_is_left() -> None:
    """A force check aggregates a silent log with parts left; an empty one just closes."""
    s = LogWorkflowState()
    st.on_force_wake(s)
    assert s.force_check
    recent = LogSnapshot(1, newest_part_age_ms=10, pending_parts=3)
    st.on_force_check(s, recent, 0)
    assert not s.force_check
    assert st.force_verdict(s, recent, force_after_ms=100) is st.ForceVerdict.KEEP_WAITING
    silent = LogSnapshot(1, newest_part_age_ms=200, pending_parts=3)
    st.on_force_check(s, silent, 0)
    assert st.force_verdict(s, silent, force_after_ms=100) is st.ForceVerdict.AGGREGATE
    assert s.stats.force_checks == 2
    empty = LogSnapshot(1, newest_part_age_ms=200, pending_parts=0)
    s.revision = 4
    st.on_force_check(s, empty, 0)
    assert st.force_verdict(s, empty, force_after_ms=100) is st.ForceVerdict.NOTHING_LEFT
    assert st.has_work(s)
    st.on_nothing_left(s)
    assert not st.has_work(s)
    st.on_parts(s, [PartRef(0, 1, final=True)], now_ms=1)
    st.on_force_check(s, empty, 0)
    assert st.force_verdict(s, empty, force_after_ms=100) is st.ForceVerdict.KEEP_WAITING


def test_a_request_is_served_only_by_a_round_that_took_it() -> None:
    """A ticket queued while a round is in flight waits for the next round."""
    s = LogWorkflowState()
    st.request(s, RequestKind.AGGREGATE)
    first = st.newest_ticket(s)
    st.take_requests(s)
    assert not st.rewrite_taken(s)  # the round in flight takes it; no rewrite asked
    st.request(s, RequestKind.REARCHIVE)
    late = st.newest_ticket(s)
    assert late.number == first.number + 1 and late.kind is RequestKind.REARCHIVE
    st.serve(s)
    assert st.is_served(s, first) and not st.is_served(s, late)
    assert st.requested(s)
    st.take_requests(s)
    assert st.rewrite_taken(s)  # the next round rewrites
    st.serve(s)
    assert st.is_served(s, late) and not st.requested(s)


def test_an_abandoned_round_hands_its_requests_to_the_next() -> None:
    """Requeued tickets come first and stay unserved until a round finishes them."""
    s = LogWorkflowState()
    st.request(s, RequestKind.REARCHIVE)
    taken = st.newest_ticket(s)
    st.take_requests(s)
    st.request(s, RequestKind.AGGREGATE)
    queued = st.newest_ticket(s)
    st.requeue(s)
    assert [t.number for t in s.pending] == [taken.number, queued.number] and not s.taken
    assert not st.is_served(s, taken)


def test_rearchive_resets_the_attempts_and_a_refused_purge_asks_for_one() -> None:
    """An operator's rearchive earns fresh attempts; a refused purge queues a rewrite."""
    s = LogWorkflowState(mismatches=5)
    st.request(s, RequestKind.REARCHIVE)
    assert s.mismatches == 0
    s.pending, s.mismatches = [], 1
    st.on_purged(s, PurgeResult(False, reason="newer content"))
    assert s.mismatches == 2 and s.pending[0].kind is RequestKind.REARCHIVE
    assert "newer content" in s.stats.last_error and not s.purged
    st.on_purged(s, PurgeResult(True))
    assert s.purged


def test_aggregation_verification_and_the_purge_delay() -> None:
    """Versions follow the database; the purge delay counts from verification, once."""
    s = LogWorkflowState(purged=True)
    st.on_aggregated(s, AggregateResult(3, content_version=2, size=10, parts=4, merged=1))
    assert (s.log_id, s.content_version, s.purged, s.stats.aggregations) == (3, 2, False, 1)
    assert not st.is_verified(s, 2)
    st.on_verified(s, 2, now_ms=1_000, purge_delay_ms=500)
    assert st.is_verified(s, 2) and st.purge_due_ms(s, 9_999, 500) == 1_500
    s.purge_due_ms = None  # e.g. verified by an earlier run: the delay starts now
    assert st.purge_due_ms(s, 2_000, 500) == 2_500
    assert s.purge_due_ms is None  # a question changes nothing


def test_a_settled_round_forgets_purged_numbers_unless_the_log_changed() -> None:
    """After purge a resent number is a new part; a change meanwhile keeps the round open."""
    s = LogWorkflowState()
    st.on_parts(s, [PartRef(0, 1)], now_ms=0)
    revision = s.revision
    assert not st.changed(s, revision)
    st.on_settled(s, revision)
    assert s.known == set() and not st.has_work(s)
    st.on_parts(s, [PartRef(0, 1)], now_ms=5)
    assert st.changed(s, revision) and s.known == {0}


def test_replace_restarts_the_log_and_queues_an_aggregation() -> None:
    """PUT /logs: the parts are gone, the final number too; the next round aggregates."""
    s = LogWorkflowState(final_number=9, known={1, 2}, purged=True, mismatches=3)
    st.on_replaced(s, ReplaceResult(log_id=4, content_version=7))
    assert (s.final_number, s.known, s.purged, s.mismatches) == (None, set(), False, 0)
    assert s.content_version == 7 and s.pending == [st.newest_ticket(s)]
    assert s.pending[0].kind is RequestKind.AGGREGATE


def test_only_the_steps_a_run_rests_in_reach_the_search_attribute() -> None:
    """The steps of the one pipeline task (and the quiet period) leave `LogState` as it is;
    the upload retrying and the purge delay are searchable as `archiving`."""
    passing = {
        LogState.QUIET,
        LogState.AGGREGATING,
        LogState.UPLOADING,
        LogState.VERIFYING,
        LogState.PURGING,
    }
    assert {searchable(step) for step in passing} == {None}
    assert searchable(LogState.ARCHIVING) is searchable(LogState.ARCHIVED) is LogState.ARCHIVING
    assert {searchable(step) for step in set(LogState) - passing} == {
        LogState.STREAMING,
        LogState.ARCHIVING,
        LogState.REARCHIVE_BACKOFF,
        LogState.VERIFY_FAILED,
        LogState.DONE,
        LogState.CLEARED,
        LogState.REMOVED,
    }


def test_completeness_follows_the_latest_aggregation_and_an_incomplete_log_lingers() -> None:
    """Missing ranges come from each aggregation; while any remain the grace window is the
    incomplete one; a row-less result (no log) leaves what is known."""
    s = LogWorkflowState()
    assert st.grace_ms(s, 60_000, 3_600_000) == 60_000
    st.on_completeness(s, AggregateResult(7, missing=[[2, 3]]))
    assert s.missing_parts == [[2, 3]] and st.incomplete(s)
    assert st.grace_ms(s, 60_000, 3_600_000) == 3_600_000
    assert st.grace_ms(s, 60_000, 0) == 60_000  # never shorter than the usual window
    st.on_completeness(s, AggregateResult(None))
    assert st.incomplete(s)
    st.on_completeness(s, AggregateResult(7))
    assert s.missing_parts == [] and not st.incomplete(s)


def test_timeline_keeps_the_first_part_and_the_newest_step() -> None:
    s = LogWorkflowState()
    st.on_part_milestones(s, [PartRef(0, 5)], now_ms=1_000)
    st.on_part_milestones(s, [PartRef(1, 5), PartRef(2, 0, final=True)], now_ms=2_000)
    st.on_milestone(s, "archived", 3_000)
    st.on_milestone(s, "archived", 4_500)
    assert s.stats.timeline == {
        "first_part": "1970-01-01T00:00:01.000+00:00",
        "final_part": "1970-01-01T00:00:02.000+00:00",
        "archived": "1970-01-01T00:00:04.500+00:00",
    }
