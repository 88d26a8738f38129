"""Temporal Cloud billable actions of one run, counted from its recorded history.

Temporal Cloud bills by actions (its "Temporal Cloud Actions" page): a workflow start (also
by continue-as-new), each signal (a signal-with-start is one action in all), each accepted
update (update-with-start is a start plus an update), each activity attempt, the local
activities of one workflow task together, each timer started and each search-attribute
upsert (attributes set at the start are free). Queries, activity heartbeats and rejected
updates are billed too but leave no event, so they are not here, as in Temporal Cloud's own
estimate from the history; child workflows and Nexus are left out (nothing here uses them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent

LOCAL_ACTIVITY_MARKER = "core_local_activity"
_FREE_ATTRIBUTES = {"TemporalChangeVersion"}  # versioning markers are exempt


@dataclass
class BillableActions:
    starts: int = 0  # this run's start, unless continue-as-new started it (counted before)
    continued: int = 0  # continue-as-new: the next run's start
    signals: int = 0
    updates: int = 0
    activities: int = 0  # attempts: a retry is an action too
    local_activities: int = 0  # workflow tasks that recorded local activity markers
    timers: int = 0
    upserts: int = 0

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))

    def __str__(self) -> str:
        counted = ", ".join(f"{f.name} {getattr(self, f.name)}" for f in fields(self))
        return f"{self.total} ({counted})"


def billable_actions(events: Iterable[HistoryEvent]) -> BillableActions:
    """The actions one run's history records (see the module docstring for the rules)."""
    counted = BillableActions()
    marker_tasks: set[int] = set()
    for event in events:
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            started = event.workflow_execution_started_event_attributes
            counted.starts += not started.continued_execution_run_id
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
            counted.continued += 1
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            # The server records a signal-with-start's signal right after the start, before
            # the first workflow task is scheduled: it is part of the start's one action.
            counted.signals += event.event_id != 2
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            counted.updates += 1
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            # Retries leave no event of their own: the started event carries the attempt.
            counted.activities += max(1, event.activity_task_started_event_attributes.attempt)
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == LOCAL_ACTIVITY_MARKER:
                marker_tasks.add(marker.workflow_task_completed_event_id)
        elif kind == EventType.EVENT_TYPE_TIMER_STARTED:
            counted.timers += 1
        elif kind == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            upsert = event.upsert_workflow_search_attributes_event_attributes
            counted.upserts += not set(upsert.search_attributes.indexed_fields) <= _FREE_ATTRIBUTES
    counted.local_activities = len(marker_tasks)
    return counted
