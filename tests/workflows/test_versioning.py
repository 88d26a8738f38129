"""Worker Versioning on the dev server: runs stay PINNED to the build that started them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import asyncpg
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from tests.helpers import assert_eventually, store_parts
from tests.workflows.support import fast, send
from travis_logs.archive_store import ArchiveStore
from travis_logs.settings import Settings
from workers.temporal_worker import (
    build_worker,
    deployment_version,
    lifecycle_activities,
    set_current_version,
)
from workflows.log_workflow import LogWorkflow
from workflows.models import LogState, LogWorkflowState

Handle = WorkflowHandle[LogWorkflow, LogWorkflowState]


async def build_ids(handle: Handle) -> set[str]:
    """The builds whose workers completed the run's workflow tasks."""
    found = set()
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            found.add(event.workflow_task_completed_event_attributes.deployment_version.build_id)
    return found


async def test_open_run_finishes_on_its_build_while_new_logs_start_on_the_next(
    temporal_client: Client,
    settings: Settings,
    pool: asyncpg.Pool,
    store: ArchiveStore,
    new_job_id: Iterator[int],
) -> None:
    """Two builds side by side: after the rollout, the log that was streaming completes on
    the old build and a new log runs on the new one."""
    deployment = f"travis-logs-{uuid.uuid4().hex[:8]}"
    old = fast(settings, temporal_deployment_name=deployment, temporal_build_id="build-1")
    new = old.model_copy(update={"temporal_build_id": "build-2"})
    activities = lifecycle_activities(pool, store)
    streaming, started_later = next(new_job_id), next(new_job_id)
    async with build_worker(temporal_client, old, activities):  # the first: made current
        await store_parts(pool, streaming, {0: "old\n"})
        first = await send(temporal_client, old, streaming, {0: "old\n"}, final=None)

        async def waiting() -> None:
            assert (await first.query(LogWorkflow.status)).state == LogState.STREAMING
            # The README's query for the runs that still need the old build's workers.
            query = f"TemporalWorkerDeploymentVersion = '{deployment}:build-1'"
            count = await temporal_client.count_workflows(
                f"{query} AND ExecutionStatus = 'Running'"
            )
            assert count.count == 1

        await assert_eventually(waiting)
        async with build_worker(temporal_client, new, activities):
            await set_current_version(temporal_client, deployment_version(new))
            await store_parts(pool, started_later, {0: "new\n", 1: ""}, final=1)
            second = await send(temporal_client, new, started_later, {0: "new\n", 1: ""}, final=1)
            assert (await second.result()).state == LogState.DONE
            await store_parts(pool, streaming, {1: ""}, final=1)
            await send(temporal_client, old, streaming, {1: ""}, final=1)
            assert (await first.result()).state == LogState.DONE
    assert await build_ids(first) == {"build-1"}
    assert await build_ids(second) == {"build-2"}
    assert await store.fetch(streaming) == b"old\n"
    assert await store.fetch(started_later) == b"new\n"


async def test_a_run_asleep_at_the_rollout_runs_on_the_new_build(
    temporal_client: Client,
    settings: Settings,
    pool: asyncpg.Pool,
    store: ArchiveStore,
    job_id: int,
) -> None:
    """A log opened while the old build was current has run no code when the new build takes
    over: it is pinned to no build yet, does not hold the old build's workers, and its
    lifecycle runs on the new build."""
    deployment = f"travis-logs-{uuid.uuid4().hex[:8]}"
    old = fast(settings, temporal_deployment_name=deployment, temporal_build_id="build-1")
    new = old.model_copy(update={"temporal_build_id": "build-2"})
    activities = lifecycle_activities(pool, store)
    async with build_worker(temporal_client, old, activities):
        await store_parts(pool, job_id, {0: "asleep\n"})
        handle = await send(temporal_client, old, job_id, {0: "asleep\n"}, final=None, opens=True)
        info = (await handle.describe()).raw_description.workflow_execution_info
        assert not info.HasField("versioning_info")  # no build has run it: pinned to none
    async with build_worker(temporal_client, new, activities):
        await set_current_version(temporal_client, deployment_version(new))
        await store_parts(pool, job_id, {1: ""}, final=1)
        await send(temporal_client, new, job_id, {1: ""}, final=1)
        assert (await handle.result()).state == LogState.DONE
    assert await build_ids(handle) == {"build-2"}
    assert await store.fetch(job_id) == b"asleep\n"
