"""The latency budget of a log's way, from the `logs` timeline columns and recorded histories.

Read after a capacity level has run (the measured system pays nothing for it while the load
runs): each sampled job's row gives when its first and final part were stored and when it
was aggregated, archived, verified and purged; its workflow history gives when the final
part's signal was recorded, when a worker took the task it made, and when the quiet period's
timer fired. Every workflow task's wait between scheduled and started is also collected, by
what made the task (start, signal, timer, activity) and by the queue it waited on (normal
or the worker's sticky queue): where the time of a log goes while the machine is not busy.

All stamps come from one clock: the load generator, PostgreSQL's now() and the Temporal
server's event times run on the same machine.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from temporalio.api.enums.v1 import EventType, TaskQueueKind
from temporalio.api.history.v1 import HistoryEvent

from bench.billing import BillableActions, billable_actions

TIMELINE_COLUMNS = (
    "first_part_at",
    "final_part_at",
    "aggregated_at",
    "archived_at",
    "verified_at",
    "purged_at",
)
TIMELINE_QUERY = (
    "SELECT job_id, "
    + ", ".join(f"extract(epoch FROM {c})::float8 AS {c}" for c in TIMELINE_COLUMNS)
    + " FROM logs WHERE job_id = ANY($1::bigint[])"
)

_E = EventType
_TRIGGERS = {
    _E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED: "start",
    _E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: "signal",
    _E.EVENT_TYPE_TIMER_FIRED: "timer",
    _E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity",
    _E.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity",
    _E.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT: "task timed out",
    _E.EVENT_TYPE_WORKFLOW_TASK_FAILED: "task failed",
    _E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ADMITTED: "update",
}

# The stages in order: (label, from, to); a name is a timeline column or a history stamp.
STAGES = (
    ("final part published -> stored", "final_published", "final_part_at"),
    ("final part stored -> signal recorded", "final_part_at", "signalled"),
    ("signal recorded -> taken by a worker", "signalled", "signal_taken"),
    ("signal taken -> quiet period over", "signal_taken", "quiet_over"),
    ("  (timer fired late by)", "quiet_due", "quiet_over"),
    ("quiet period over -> aggregated", "quiet_over", "aggregated_at"),
    ("aggregated -> archived", "aggregated_at", "archived_at"),
    ("archived -> verified", "archived_at", "verified_at"),
    ("verified -> purged", "verified_at", "purged_at"),
    ("final part stored -> purged", "final_part_at", "purged_at"),
    ("first part published -> stored", "first_published", "first_part_at"),
)


def _seconds(event: HistoryEvent) -> float:
    return event.event_time.seconds + event.event_time.nanos / 1e9


@dataclass
class TaskWait:
    """One workflow task's scheduled -> started wait, what made it, and its queue."""

    trigger: str
    sticky: bool
    seconds: float


@dataclass
class HistoryStamps:
    """What one run's history says about the final part's way to the archive."""

    stamps: dict[str, float] = field(default_factory=dict)
    waits: list[TaskWait] = field(default_factory=list)
    activity_waits: list[float] = field(default_factory=list)  # activity scheduled -> started
    actions: BillableActions = field(default_factory=BillableActions)


def read_history(events: Sequence[HistoryEvent]) -> HistoryStamps:
    """Stamps of the final signal, the task that took it, the quiet timer; every task's wait.

    The final part's signal is the last one recorded before the first timer fired (the quiet
    period's: the force timer does not fire in a normal lifecycle); the task that took it is
    the first one started after it, whatever made that task.
    """
    out = HistoryStamps(actions=billable_actions(events))
    scheduled: dict[int, tuple[str, bool, float]] = {}
    activity_scheduled: dict[int, float] = {}
    timers: dict[int, float] = {}  # started event id -> when it is due
    trigger, untaken, fired = "start", False, False
    for event in events:
        kind, at = event.event_type, _seconds(event)
        if kind in _TRIGGERS and event.event_id != 2:  # 2: signal-with-start's signal
            trigger = _TRIGGERS[kind]
        if kind == _E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED and not fired:
            out.stamps["signalled"], untaken = at, True
        elif kind == _E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            queue = event.workflow_task_scheduled_event_attributes.task_queue
            sticky = queue.kind == TaskQueueKind.TASK_QUEUE_KIND_STICKY
            scheduled[event.event_id] = (trigger, sticky, at)
        elif kind == _E.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            attrs = event.workflow_task_started_event_attributes
            cause, sticky, when = scheduled.get(attrs.scheduled_event_id, ("?", False, at))
            out.waits.append(TaskWait(cause, sticky, at - when))
            if untaken:
                out.stamps["signal_taken"], untaken = at, False
        elif kind == _E.EVENT_TYPE_TIMER_STARTED:
            timeout = event.timer_started_event_attributes.start_to_fire_timeout
            timers[event.event_id] = at + timeout.seconds + timeout.nanos / 1e9
        elif kind == _E.EVENT_TYPE_TIMER_FIRED and not fired:
            fired = True
            started_id = event.timer_fired_event_attributes.started_event_id
            out.stamps.update(quiet_over=at, quiet_due=timers.get(started_id, at))
        elif kind == _E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            activity_scheduled[event.event_id] = at
        elif kind == _E.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attrs_a = event.activity_task_started_event_attributes
            if attrs_a.scheduled_event_id in activity_scheduled:
                out.activity_waits.append(at - activity_scheduled[attrs_a.scheduled_event_id])
    if "signal_taken" not in out.stamps:
        out.stamps.pop("signalled", None)
    return out


def pct(values: Sequence[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def spread(values: Sequence[float]) -> str:
    """`p50 / p99 / max (n)` in seconds."""
    if not values:
        return "-"
    return f"{pct(values, 50):7.3f} {pct(values, 99):7.3f} {max(values):7.3f}  (n={len(values)})"


@dataclass
class Budget:
    """Per stage, the seconds each sampled log spent in it; task waits by cause and queue."""

    stages: dict[str, list[float]]
    waits: dict[tuple[str, str], list[float]]
    activity_waits: list[float]
    actions: list[BillableActions]

    def lines(self) -> list[str]:
        out = ["    stage (s)                                  p50     p99     max"]
        for label, values in self.stages.items():
            out.append(f"    {label:40s} {spread(values)}")
        out.append("    workflow task scheduled -> started (s), by cause and queue:")
        for (cause, queue), values in sorted(self.waits.items()):
            slow = sum(v > 1 for v in values)
            out.append(f"      {cause:9s} {queue:7s} {spread(values)}  >1 s: {slow}")
        out.append(f"    activity task scheduled -> started (s)  {spread(self.activity_waits)}")
        return out


def budget(
    rows: Iterable[dict[str, float | None]],
    histories: dict[int, HistoryStamps],
    published: dict[int, tuple[float | None, float | None]],
) -> Budget:
    """The stages of every job with a row; `published` is (first, final) publish times."""
    stages: dict[str, list[float]] = {label: [] for label, _, _ in STAGES}
    waits: defaultdict[tuple[str, str], list[float]] = defaultdict(list)
    activity_waits: list[float] = []
    actions = []
    for row in rows:
        job = int(row["job_id"] or 0)
        first, final = published.get(job, (None, None))
        stamps: dict[str, float | None] = {
            **{c: row[c] for c in TIMELINE_COLUMNS},
            "first_published": first,
            "final_published": final,
        }
        history = histories.get(job)
        if history is not None:
            stamps.update(history.stamps)
            for wait in history.waits:
                waits[(wait.trigger, "sticky" if wait.sticky else "normal")].append(wait.seconds)
            activity_waits.extend(history.activity_waits)
            actions.append(history.actions)
        for label, start, end in STAGES:
            a, b = stamps.get(start), stamps.get(end)
            if a is not None and b is not None:
                stages[label].append(b - a)
    return Budget(stages, dict(waits), activity_waits, actions)


def mean_actions(actions: Sequence[BillableActions]) -> float:
    return sum(a.total for a in actions) / len(actions) if actions else float("nan")
