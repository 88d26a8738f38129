"""The sweeper's Temporal Schedule, created or brought up to date from settings (idempotent)."""

from __future__ import annotations

import logging
from datetime import timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from travis_logs.settings import Settings
from workflows.sweeper import SWEEPER_TYPE, SweepInput

log = logging.getLogger(__name__)


def sweeper_schedule(settings: Settings) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(
            SWEEPER_TYPE,
            SweepInput(
                max_logs=settings.sweeper_max_logs_per_run,
                page_size=min(settings.reconcile_page_size, settings.sweeper_max_logs_per_run),
            ),
            id=f"{settings.sweeper_schedule_id}-run",
            task_queue=settings.temporal_task_queue,
            static_summary="Start the workflow of every log that is not done and has none open",
        ),
        spec=ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=timedelta(seconds=settings.sweeper_interval_s))]
        ),
        # One sweep at a time: a slow run makes the next one wait, not overlap.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
        state=ScheduleState(note="created by travis-logs worker / reconcile --schedule"),
    )


async def ensure_sweeper_schedule(client: Client, settings: Settings) -> str:
    """Create the schedule, or replace its definition when it exists; 'created' or 'updated'."""
    schedule = sweeper_schedule(settings)
    try:
        await client.create_schedule(settings.sweeper_schedule_id, schedule)
    except ScheduleAlreadyRunningError:

        def replace(current: ScheduleUpdateInput) -> ScheduleUpdate:
            # Keep the state: an operator's pause survives a worker restart.
            schedule.state = current.description.schedule.state
            return ScheduleUpdate(schedule=schedule)

        await client.get_schedule_handle(settings.sweeper_schedule_id).update(replace)
        log.info("sweeper schedule %s updated", settings.sweeper_schedule_id)
        return "updated"
    log.info("sweeper schedule %s created", settings.sweeper_schedule_id)
    return "created"
