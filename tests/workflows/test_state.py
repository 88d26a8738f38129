"""The state transitions of LogWorkflow, without a server: plain functions of (state, event)."""

from __future__ import annotations

from activities.models import AggregateResult, LogSnapshot, PurgeResult, ReplaceResult
from workflows import state as st
from workflows.models import (
    LogState,
    LogWorkflowState,
    PartRef,
    RequestKind,
    Trigger,
    searchable,
)


def test_new_parts_move_the_deadline_and_resent_ones_change_nothing() -> None:
    """A new number bumps the revision and the newest part's time; a resend does not."""
    s = LogWorkflowState()
    assert st.on_parts(s, [PartRef(0, 5), PartRef(1, 3, final=True)], now_ms=100)
    assert (s.revision, s.last_part_at_ms, s.final_number, s.known) == (1, 100, 1, {0, 1})
    assert not st.on_parts(s, [PartRef(1, 3, final=True)], now_ms=200)
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
    """The force timer aggregates a silent log with parts left; an empty one just closes."""
    s = LogWorkflowState()
    recent = LogSnapshot(1, newest_part_age_ms=10, pending_parts=3)
    assert st.on_force_check(s, recent, 0, force_after_ms=100) is st.ForceVerdict.KEEP_WAITING
    silent = LogSnapshot(1, newest_part_age_ms=200, pending_parts=3)
    assert st.on_force_check(s, silent, 0, force_after_ms=100) is st.ForceVerdict.AGGREGATE
    assert s.stats.force_checks == 2
    empty = LogSnapshot(1, newest_part_age_ms=200, pending_parts=0)
    s.revision = 4
    assert st.on_force_check(s, empty, 0, force_after_ms=100) is st.ForceVerdict.NOTHING_LEFT
    assert not st.has_work(s)


def test_a_request_is_served_only_by_a_round_that_took_it() -> None:
    """A ticket queued while a round is in flight waits for the next round."""
    s = LogWorkflowState()
    first = st.request(s, RequestKind.AGGREGATE)
    assert not st.take_requests(s)  # the round in flight takes it; no rewrite asked
    late = st.request(s, RequestKind.REARCHIVE)
    st.serve(s)
    assert st.is_served(s, first) and not st.is_served(s, late)
    assert st.requested(s) and st.take_requests(s)  # the next round rewrites
    st.serve(s)
    assert st.is_served(s, late) and not st.requested(s)


def test_an_abandoned_round_hands_its_requests_to_the_next() -> None:
    """Requeued tickets come first and stay unserved until a round finishes them."""
    s = LogWorkflowState()
    taken = st.request(s, RequestKind.REARCHIVE)
    st.take_requests(s)
    queued = st.request(s, RequestKind.AGGREGATE)
    st.requeue(s)
    assert [t.number for t in s.pending] == [taken.number, queued.number] and not s.taken
    assert not st.is_served(s, taken)


def test_rearchive_resets_the_attempts_and_a_refused_purge_asks_for_one() -> None:
    """An operator's rearchive earns fresh attempts; a refused purge queues a rewrite."""
    s = LogWorkflowState(mismatches=5)
    st.request(s, RequestKind.REARCHIVE)
    assert s.mismatches == 0
    s.pending, s.mismatches = [], 1
    assert not st.on_purged(s, PurgeResult(False, reason="newer content"))
    assert s.mismatches == 2 and s.pending[0].kind is RequestKind.REARCHIVE
    assert "newer content" in s.stats.last_error
    assert st.on_purged(s, PurgeResult(True)) and s.purged


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


def test_a_purged_log_restored_from_its_archive_is_no_longer_purged() -> None:
    """A re-archive brought the content back (nothing merged): the next purge is due again;
    an aggregation that left the purged log alone keeps it purged."""
    s = LogWorkflowState(purged=True)
    st.on_aggregated(s, AggregateResult(3, content_version=1, has_content=True))
    assert s.purged
    st.on_aggregated(s, AggregateResult(3, content_version=2, has_content=True, from_archive=True))
    assert not s.purged and s.content_version == 2


def test_a_settled_round_forgets_purged_numbers_unless_the_log_changed() -> None:
    """After purge a resent number is a new part; a change meanwhile keeps the round open."""
    s = LogWorkflowState()
    st.on_parts(s, [PartRef(0, 1)], now_ms=0)
    revision = s.revision
    assert not st.changed(s, revision)
    st.on_settled(s, revision)
    assert s.known == set() and not st.has_work(s)
    assert st.on_parts(s, [PartRef(0, 1)], now_ms=5) and st.changed(s, revision)


def test_replace_restarts_the_log_and_queues_an_aggregation() -> None:
    """PUT /logs: the parts are gone, the final number too; the next round aggregates."""
    s = LogWorkflowState(final_number=9, known={1, 2}, purged=True, mismatches=3)
    ticket = st.on_replaced(s, ReplaceResult(log_id=4, content_version=7))
    assert (s.final_number, s.known, s.purged, s.mismatches) == (None, set(), False, 0)
    assert s.content_version == 7 and s.pending == [ticket]


def test_a_forced_round_without_final_part_restarts_the_force_clock() -> None:
    """Parts nobody signalled may still come after a forced round: wait again."""
    s = LogWorkflowState(trigger=Trigger.FORCE_TIMEOUT)
    assert st.on_forced_without_final(s, now_ms=42) and s.last_part_at_ms == 42
    s.final_number = 3
    assert not st.on_forced_without_final(s, now_ms=50)


def test_the_pipeline_steps_are_one_searchable_state() -> None:
    """Only the states an operator searches for reach the search attribute."""
    pipeline = {LogState.AGGREGATING, LogState.VERIFYING, LogState.ARCHIVED, LogState.PURGING}
    assert {searchable(step) for step in pipeline} == {LogState.ARCHIVING}
    assert len({searchable(step) for step in LogState}) == 8
