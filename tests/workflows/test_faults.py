"""Faults on the dev server: a corrupted archive, S3 down or blackholed, the worker killed mid-archive."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
from temporalio.client import Client

from tests.helpers import assert_eventually, free_port, joined, log_row, open_store, store_parts
from tests.workflows.faults import AfterActivity, corrupt_archive
from tests.workflows.proxy import BlackholeProxy, StallingProxy
from tests.workflows.support import fast, send
from travis_logs.archive_store import ArchiveStore
from travis_logs.settings import Settings
from workers.temporal_worker import build_worker, lifecycle_activities
from workflows.log_workflow import LogWorkflow
from workflows.models import LogState, workflow_id

PARTS = {0: "a\n", 1: "b\n", 2: "c\n", 3: ""}


async def test_corrupted_archive_is_archived_again_and_then_verified(
    temporal_client: Client,
    quick: Settings,
    pool: asyncpg.Pool,
    store: ArchiveStore,
    job_id: int,
) -> None:
    """The object damaged between archive and verify is caught, rewritten and verified."""
    corrupt = AfterActivity("archive_log", corrupt_archive(store))
    activities = lifecycle_activities(pool, store)
    async with build_worker(temporal_client, quick, activities, interceptors=[corrupt]):
        await store_parts(pool, job_id, PARTS, final=3)
        state = await (await send(temporal_client, quick, job_id, PARTS, final=3)).result()
    assert corrupt.fired == 1
    assert state.stats.archive_attempts == 2 and state.state == LogState.DONE
    assert "SHA-256" in state.stats.last_error
    assert await store.fetch(job_id) == joined(PARTS).encode()
    assert (await log_row(pool, job_id))["archive_verified"] is True


async def test_s3_outage_keeps_the_log_unpurged_and_retrying(
    temporal_client: Client,
    quick: Settings,
    pool: asyncpg.Pool,
    store: ArchiveStore,
    job_id: int,
) -> None:
    """While S3 is unreachable nothing is purged and the archive is retried; then it completes."""
    down = quick.model_copy(update={"s3_endpoint_url": f"http://127.0.0.1:{free_port()}"})
    await store_parts(pool, job_id, PARTS, final=3)
    async with open_store(down) as unreachable:
        activities = lifecycle_activities(pool, unreachable)
        async with build_worker(temporal_client, down, activities):
            handle = await send(temporal_client, quick, job_id, PARTS, final=3)

            async def retrying() -> None:
                pending = (await handle.describe()).raw_description.pending_activities
                assert pending and pending[0].activity_type.name == "archive_log"
                assert pending[0].attempt >= 2
                assert "onnect" in pending[0].last_failure.message  # could not connect

            await assert_eventually(retrying)
            row = await log_row(pool, job_id)
            assert row["content"] == joined(PARTS) and row["purged_at"] is None
            assert (await handle.query(LogWorkflow.status)).state == LogState.ARCHIVING
    async with build_worker(temporal_client, quick, lifecycle_activities(pool, store)):
        assert (await handle.result()).state == LogState.DONE
    assert await store.fetch(job_id) == joined(PARTS).encode()


@asynccontextmanager
async def worker_process(
    settings: Settings, log: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """`travis-logs worker` as its own process, configured through the environment only."""
    env = {
        **os.environ,
        "DATABASE_URL": str(settings.database_url),
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "S3_ENDPOINT_URL": settings.s3_endpoint_url or "",
        "S3_BUCKET": settings.s3_bucket,
        "WORKER_SHUTDOWN_GRACE_S": "2",
        "WORKER_STICKY_TIMEOUT_S": "1",
    }
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "workers.cli", "worker", env=env, stdout=out, stderr=out
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_worker_killed_during_archive_finishes_after_restart(
    temporal_client: Client,
    settings: Settings,
    pool: asyncpg.Pool,
    store: ArchiveStore,
    job_id: int,
    tmp_path: Path,
) -> None:
    """SIGKILL while the upload hangs; a restarted worker ends with one verified archive."""
    quick = fast(settings, logs_heartbeat_timeout_s=1)
    s3 = urlsplit(quick.s3_endpoint_url or "")
    proxy = StallingProxy(s3.hostname or "", s3.port or 80)
    relayed = quick.model_copy(
        update={"s3_endpoint_url": f"http://127.0.0.1:{await proxy.start()}"}
    )
    proxy.stalled = True
    await store_parts(pool, job_id, PARTS, final=3)
    handle = await send(temporal_client, quick, job_id, PARTS, final=3)
    try:
        async with worker_process(relayed, tmp_path / "worker.log") as first:

            async def uploading() -> None:
                # The upload's first attempt (a local activity in the workflow task) hangs
                # on its first S3 request.
                assert proxy.held >= 1

            await assert_eventually(uploading, timeout=30)
            first.send_signal(signal.SIGKILL)
            await first.wait()
        proxy.stalled = False
        async with worker_process(relayed, tmp_path / "worker.log") as second:
            state = await asyncio.wait_for(handle.result(), timeout=60)
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), timeout=20) == 0
    finally:
        await proxy.close()
    assert state.state == LogState.DONE and state.stats.archive_attempts == 1
    assert await store.fetch(job_id) == joined(PARTS).encode()
    listed = await store.client.list_objects_v2(Bucket=quick.s3_bucket, Prefix=f"jobs/{job_id}/")
    keys = sorted(o["Key"] for o in listed.get("Contents", []))
    assert keys == [ArchiveStore.key(job_id)]  # its index is in the row (a small log)
    row = await log_row(pool, job_id)
    assert row["archive_verified"] is True and row["purged_at"] is not None
    assert handle.id == workflow_id(job_id)


async def test_blackholed_s3_fails_each_attempt_and_archives_once_s3_answers(
    temporal_client: Client,
    quick: Settings,
    pool: asyncpg.Pool,
    store: ArchiveStore,
    new_job_id: Iterator[int],
) -> None:
    """S3 swallowing requests (kept-alive connections too): attempts time out, then it completes."""
    s3 = urlsplit(quick.s3_endpoint_url or "")
    proxy = BlackholeProxy((s3.hostname or "", s3.port or 80))
    relayed = quick.model_copy(
        update={
            "s3_endpoint_url": f"http://127.0.0.1:{await proxy.start()}",
            "s3_request_timeout_s": 0.5,
        }
    )
    warm, job_id = next(new_job_id), next(new_job_id)
    try:
        async with (
            open_store(relayed) as through_proxy,
            build_worker(temporal_client, relayed, lifecycle_activities(pool, through_proxy)),
        ):
            # A log archived first leaves kept-alive connections, which the blackhole kills too.
            await store_parts(pool, warm, PARTS, final=3)
            assert (
                await (await send(temporal_client, quick, warm, PARTS, 3)).result()
            ).state == LogState.DONE
            proxy.blackhole()
            await store_parts(pool, job_id, PARTS, final=3)
            handle = await send(temporal_client, quick, job_id, PARTS, final=3)

            async def timing_out() -> None:
                pending = (await handle.describe()).raw_description.pending_activities
                assert pending and pending[0].activity_type.name == "archive_log"
                assert pending[0].attempt >= 3
                failure = pending[0].last_failure
                assert failure.application_failure_info.type == "S3Timeout"
                assert "did not finish" in failure.message

            await assert_eventually(timing_out, timeout=60)
            assert (await log_row(pool, job_id))["purged_at"] is None
            proxy.restore()
            state = await handle.result()
    finally:
        await proxy.close()
    assert state.state == LogState.DONE
    assert await store.fetch(job_id) == joined(PARTS).encode()
    assert (await log_row(pool, job_id))["archive_verified"] is True
