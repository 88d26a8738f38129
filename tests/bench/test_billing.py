"""Billable actions counted from recorded histories (no server)."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import (
    ActivityTaskStartedEventAttributes,
    HistoryEvent,
    MarkerRecordedEventAttributes,
)
from temporalio.client import WorkflowHistory

from bench.billing import LOCAL_ACTIVITY_MARKER, BillableActions, billable_actions
from tests.workflows.support import HISTORIES


def recorded(name: str) -> list[HistoryEvent]:
    path = HISTORIES / f"{name}.json"
    return list(WorkflowHistory.from_json(name, path.read_text(encoding="utf-8")).events)


def test_a_lifecycle_of_two_signals_costs_six_actions() -> None:
    """Signal-with-start (one action), the final part's signal, the quiet timer, the one
    upsert (done), and two workflow tasks with local activities (read the row; aggregate,
    upload, verify and purge together). No force timer, no grace timer, no upload activity."""
    counted = billable_actions(recorded("lifecycle"))
    assert counted == BillableActions(
        starts=1, signals=1, activities=0, local_activities=2, timers=1, upserts=1
    )
    assert counted.total == 6


def test_update_with_start_is_a_start_and_an_update() -> None:
    counted = billable_actions(recorded("replace_content"))
    assert (counted.starts, counted.updates, counted.signals) == (1, 1, 0)


def test_a_run_started_by_continue_as_new_was_paid_for_by_its_predecessor() -> None:
    counted = billable_actions(recorded("continued_as_new_last_run"))
    assert (counted.starts, counted.continued) == (0, 0)
    assert (counted.activities, counted.local_activities) == (0, 1)


def test_retries_count_and_markers_of_one_workflow_task_are_one_action() -> None:
    def marker(task: int) -> HistoryEvent:
        return HistoryEvent(
            event_type=EventType.EVENT_TYPE_MARKER_RECORDED,
            marker_recorded_event_attributes=MarkerRecordedEventAttributes(
                marker_name=LOCAL_ACTIVITY_MARKER, workflow_task_completed_event_id=task
            ),
        )

    retried = HistoryEvent(
        event_type=EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED,
        activity_task_started_event_attributes=ActivityTaskStartedEventAttributes(attempt=3),
    )
    counted = billable_actions([marker(4), marker(4), marker(9), retried])
    assert (counted.local_activities, counted.activities) == (2, 3)
