"""Lifecycle metrics, recorded by the workflow itself, and the SDK's on the worker's endpoint."""

from __future__ import annotations

import uuid

import asyncpg
import httpx
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.helpers import assert_eventually, free_port, log_row, open_store, store_parts
from tests.workflows.faults import AfterActivity, corrupt_archive
from tests.workflows.metrics_probe import MetricsProbe, probe_step
from tests.workflows.support import fast, send
from tests.workflows.test_updates import searchable_state
from travis_logs.settings import Settings
from travis_logs.temporal import DATA_CONVERTER, metrics_runtime
from workers.temporal_worker import build_worker, lifecycle_activities
from workflows.lifecycle_metrics import (
    ARCHIVE_ATTEMPTS,
    FIRST_PART,
    HISTOGRAMS,
    METRICS,
    SDK_METRICS,
    VERIFY_FAILURES,
    VERIFY_GAVE_UP,
    Phase,
)
from workflows.models import UPDATE_REARCHIVE, LifecycleResult, LogState, RearchiveInput


def exposed(text: str) -> set[str]:
    """Metric names in a Prometheus text exposition, without _bucket/_sum/_count."""
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            for suffix in ("_bucket", "_sum", "_count"):
                name = name.removesuffix(suffix)
            names.add(name)
    return names


async def test_lifecycle_and_sdk_metrics_are_exported(temporal_env: WorkflowEnvironment) -> None:
    """After one run the worker's endpoint lists every lifecycle metric and the SDK's."""
    port = free_port()
    target = temporal_env.client.service_client.config.target_host
    client = await Client.connect(target, runtime=metrics_runtime(port, "127.0.0.1"))
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[MetricsProbe], activities=[probe_step]):
        await client.execute_workflow(MetricsProbe.run, id=f"probe-{queue}", task_queue=queue)

        async def scraped() -> set[str]:
            async with httpx.AsyncClient() as http:
                text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            names = exposed(text)
            assert names >= METRICS | SDK_METRICS, (METRICS | SDK_METRICS) - names
            return names

        await assert_eventually(scraped)
    assert HISTOGRAMS <= METRICS


async def test_a_log_lifecycle_fills_the_histograms(
    temporal_env: WorkflowEnvironment, settings: Settings, pool: asyncpg.Pool, job_id: int
) -> None:
    """One log through the production worker: every phase histogram counts it once."""
    port = free_port()
    target = temporal_env.client.service_client.config.target_host
    runtime = metrics_runtime(port, "127.0.0.1")
    client = await Client.connect(target, runtime=runtime, data_converter=DATA_CONVERTER)
    quick = fast(settings)
    parts = {0: "a\n", 1: "b\n", 2: ""}
    async with (
        open_store(quick) as store,
        build_worker(client, quick, lifecycle_activities(pool, store)),
    ):
        await store_parts(pool, job_id, parts, final=2)
        state = await (await send(client, quick, job_id, parts, final=2)).result()
        assert state.state == LogState.DONE

        async def counted() -> None:
            async with httpx.AsyncClient() as http:
                text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            for phase in Phase:
                assert _count(text, phase.value) == 1, phase
            assert _count(text, FIRST_PART) == 1
            assert _count(text, ARCHIVE_ATTEMPTS) == 1

        await assert_eventually(counted)


def _count(text: str, histogram: str) -> float:
    """The summed _count of a histogram's series in an exposition."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(f"{histogram}_count"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_every_verify_failed_counts_as_a_give_up(
    temporal_env: WorkflowEnvironment, settings: Settings, pool: asyncpg.Pool, job_id: int
) -> None:
    """A log driven into verify_failed, out of it by a rearchive, and into it again: two
    give-ups, one failed verification per corrupted archive."""
    port = free_port()
    target = temporal_env.client.service_client.config.target_host
    runtime = metrics_runtime(port, "127.0.0.1")
    client = await Client.connect(target, runtime=runtime, data_converter=DATA_CONVERTER)
    limited = fast(settings, logs_max_archive_attempts=2)
    parts = {0: "a\n", 1: ""}
    async with open_store(limited) as store:
        corrupt = AfterActivity("archive_log", corrupt_archive(store), times=99)
        activities = lifecycle_activities(pool, store)
        async with build_worker(client, limited, activities, interceptors=[corrupt]):
            await store_parts(pool, job_id, parts, final=1)
            handle = await send(client, limited, job_id, parts, final=1)
            await assert_eventually(lambda: searchable_state(handle, "verify_failed"))
            again = await handle.execute_update(
                UPDATE_REARCHIVE, RearchiveInput("still broken"), result_type=LifecycleResult
            )
            assert again.served and not again.archived and again.state == LogState.VERIFY_FAILED

            async def counted() -> None:
                async with httpx.AsyncClient() as http:
                    text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                assert _value(text, VERIFY_GAVE_UP) == 2
                assert _value(text, VERIFY_FAILURES) == 4

            await assert_eventually(counted)
            await handle.terminate("test done")
    assert corrupt.fired == 4
    assert (await log_row(pool, job_id))["purged_at"] is None


def _value(text: str, counter: str) -> float:
    """The summed value of a counter's series in an exposition."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith((f"{counter}{{", f"{counter} ")):
            total += float(line.rsplit(" ", 1)[1])
    return total
