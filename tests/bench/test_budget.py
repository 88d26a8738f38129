"""The latency budget's reading of a recorded LogWorkflow history (no service needed)."""

from __future__ import annotations

from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import WorkflowHistory

from bench.budget import STAGES, budget, read_history

HISTORIES = Path(__file__).resolve().parent.parent / "workflows" / "histories"


def _events(name: str) -> list[HistoryEvent]:
    path = HISTORIES / f"{name}.json"
    return list(WorkflowHistory.from_json(name, path.read_text(encoding="utf-8")).events)


def test_the_final_signal_and_the_quiet_timer_are_found_in_order() -> None:
    stamps = read_history(_events("lifecycle")).stamps
    assert stamps["signalled"] <= stamps["signal_taken"] <= stamps["quiet_over"]
    assert stamps["quiet_due"] <= stamps["quiet_over"]  # a timer never fires early


def test_every_started_task_has_its_wait_and_the_first_is_the_start() -> None:
    """A run started at once (a resent first part, and every run before the start delay)."""
    events = _events("lifecycle_started_at_once")
    history = read_history(events)
    assert history.waits[0].trigger == "start"
    assert not history.waits[0].sticky  # a new run's first task is on the shared queue
    started = [e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED]
    assert len(history.waits) == len(started)
    assert "?" not in {wait.trigger for wait in history.waits}  # each found its scheduling
    assert history.actions.total > 0


def test_a_sleeping_run_s_first_task_is_the_final_part_s() -> None:
    """A run that slept from its first part: the final part's signal makes its first task,
    on the shared queue, and the quiet timer the only other one."""
    history = read_history(_events("lifecycle"))
    assert [(w.trigger, w.sticky) for w in history.waits] == [("signal", False), ("timer", True)]


def test_stages_without_both_stamps_are_left_out() -> None:
    row: dict[str, float | None] = {"job_id": 1.0, "final_part_at": 10.0, "purged_at": 13.5}
    for column in ("first_part_at", "aggregated_at", "archived_at", "verified_at"):
        row[column] = None
    result = budget([row], {}, {1: (None, 9.0)})
    assert result.stages["final part stored -> purged"] == [3.5]
    assert result.stages["final part published -> stored"] == [1.0]
    assert result.stages["aggregated -> archived"] == []
    assert set(result.stages) == {label for label, _, _ in STAGES}
