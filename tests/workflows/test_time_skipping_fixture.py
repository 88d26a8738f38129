"""The time-skipping server fixture: our search attributes work and timers are skipped."""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from workflows.models import ARCHIVE_ATTEMPTS, JOB_ID, LOG_STATE


@workflow.defn
class UpsertAfterAnHour:
    @workflow.run
    async def run(self) -> str:
        await workflow.sleep(timedelta(hours=1))
        workflow.upsert_search_attributes(
            [JOB_ID.value_set(7), LOG_STATE.value_set("done"), ARCHIVE_ATTEMPTS.value_set(1)]
        )
        return workflow.info().typed_search_attributes.get(LOG_STATE) or ""


async def test_time_skipping_server_skips_timers_and_knows_search_attributes(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """An hour's timer passes at once and the upsert succeeds (unregistered ones hang the task)."""
    queue = f"tq-{uuid.uuid4()}"
    async with Worker(time_skipping_env.client, task_queue=queue, workflows=[UpsertAfterAnHour]):
        result = await time_skipping_env.client.execute_workflow(
            UpsertAfterAnHour.run,
            id=f"wf-{uuid.uuid4()}",
            task_queue=queue,
            execution_timeout=timedelta(hours=2),
        )
    assert result == "done"
