"""Helpers for lifecycle tests: parts stored as the ingest stores them, signals, S3 reads."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from tests.helpers import assert_eventually
from travis_logs.settings import Settings
from workflows.client import signal_parts
from workflows.log_workflow import LogWorkflow
from workflows.models import (
    LogWorkflowInput,
    LogWorkflowState,
    PartRef,
    PartsSignal,
    workflow_id,
)

# Lifecycle timings that keep tests short; tests override what they exercise.
FAST: dict[str, Any] = {
    "logs_quiet_period_s": 0.05,
    "logs_grace_period_s": 0,
    "logs_incomplete_grace_s": 0,
    "logs_purge_delay_s": 0,
    "logs_rearchive_backoff_s": 0.05,
    "logs_heartbeat_timeout_s": 2,
    # Below the heartbeat timeout: a request S3 does not answer fails with its own error first.
    "s3_request_timeout_s": 1,
}


def fast(settings: Settings, **overrides: Any) -> Settings:
    return settings.model_copy(update={**FAST, **overrides})


def refs(parts: Mapping[int, str], final: int | None = None) -> list[PartRef]:
    return [PartRef(n, len(text.encode()), n == final) for n, text in parts.items()]


def handle_of(client: Client, job_id: int) -> WorkflowHandle[LogWorkflow, LogWorkflowState]:
    return client.get_workflow_handle(workflow_id(job_id), result_type=LogWorkflowState)


async def send(
    client: Client,
    settings: Settings,
    job_id: int,
    parts: Mapping[int, str],
    final: int | None,
    *,
    opens: bool = False,
    created: bool = False,
) -> WorkflowHandle[LogWorkflow, LogWorkflowState]:
    """Signal the parts (signal-with-start), as the ingest does for transitions; `opens`:
    the log's first part, whose run sleeps until the final part (as the ingest starts it);
    `created`: the batch of those parts created the log's row."""
    signal = PartsSignal(job_id, refs(parts, final), opens=opens, created=created)
    await signal_parts(client, settings, signal)
    return handle_of(client, job_id)


async def local_activities(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The activity types of the run's local activities, in the order they were recorded."""
    found = []
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            details = event.marker_recorded_event_attributes.details
            if "data" in details:
                found.append(json.loads(details["data"].payloads[0].data)["activity_type"])
    return found


async def workflow_tasks(handle: WorkflowHandle[Any, Any]) -> int:
    """How many workflow tasks the run has completed (each one a dispatch and a history write)."""
    done = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    return sum([event.event_type == done async for event in handle.fetch_history_events()])


HISTORIES = Path(__file__).parent / "histories"


async def record(handle: WorkflowHandle[Any, Any], name: str) -> None:
    """With RECORD_HISTORIES=1, store the run's history for the replay test's corpus."""
    if os.environ.get("RECORD_HISTORIES") != "1":
        return
    history = await handle.fetch_history()
    (HISTORIES / f"{name}.json").write_text(history.to_json(), encoding="utf-8")


async def continued_state(client: Client, workflow_id: str) -> LogWorkflowState:
    """The state a run handed to its successor when it continued as new."""

    async def first_continued() -> str:
        query = f"WorkflowId = '{workflow_id}' AND ExecutionStatus = 'ContinuedAsNew'"
        async for execution in client.list_workflows(query):
            return execution.run_id
        raise AssertionError("no run continued as new")

    run_id = await assert_eventually(first_continued)
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    closing = history.events[-1].workflow_execution_continued_as_new_event_attributes
    [inp] = await client.data_converter.decode(closing.input.payloads, [LogWorkflowInput])
    assert isinstance(inp, LogWorkflowInput) and inp.state is not None
    return inp.state
