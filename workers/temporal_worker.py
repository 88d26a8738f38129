"""`travis-logs worker`: the Temporal worker that runs LogWorkflow and its activities.

The composition root of the lifecycle: it builds the asyncpg pool, the S3 client and the
Temporal client, hands them to the activity classes, and runs until SIGTERM or SIGINT. Then
it stops polling, gives running activities WORKER_SHUTDOWN_GRACE_S to finish (S3 transfers
heartbeat, so they notice the cancellation) and closes its clients.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from datetime import timedelta
from typing import Any

import asyncpg
from temporalio.client import Client
from temporalio.worker import Interceptor, UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.aggregate import AggregateActivities
from activities.archive import ArchiveActivities
from activities.purge import PurgeActivities
from activities.replace import ReplaceActivities
from travis_logs.archive_store import ArchiveStore
from travis_logs.checks import check_postgres, check_tcp
from travis_logs.db import create_pool
from travis_logs.s3 import s3_client
from travis_logs.settings import Settings
from travis_logs.temporal import connect
from workers.signals import run_until_stopped
from workflows.log_workflow import LogWorkflow

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # everything comes from the environment (Settings)


def lifecycle_activities(pool: asyncpg.Pool, store: ArchiveStore) -> list[Callable[..., Any]]:
    """Every activity LogWorkflow calls, bound to the clients the entry point built."""
    aggregate = AggregateActivities(pool, store)
    archive = ArchiveActivities(pool, store)
    replace = ReplaceActivities(pool, store)
    purge = PurgeActivities(pool)
    return [
        aggregate.inspect_log,
        aggregate.aggregate_log,
        archive.archive_log,
        archive.verify_archive,
        purge.purge_log,
        replace.replace_content,
        replace.remove_archive,
    ]


def build_worker(
    client: Client,
    settings: Settings,
    activities: Sequence[Callable[..., Any]],
    *,
    interceptors: Sequence[Interceptor] = (),
) -> Worker:
    """The worker for the task queue, sized by settings (tests and benchmarks use it too)."""
    return Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=[LogWorkflow],
        activities=activities,
        interceptors=interceptors,
        # Every open log is a cached workflow; an evicted one replays its history per task.
        max_cached_workflows=settings.worker_max_cached_workflows,
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_grace_s),
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=settings.worker_sticky_timeout_s),
        workflow_runner=workflow_runner(settings),
    )


def workflow_runner(settings: Settings) -> WorkflowRunner:
    """The sandbox, or the sandbox sharing the workflow modules, or no sandbox (less memory)."""
    if settings.worker_workflow_runner == "sandboxed":
        return SandboxedWorkflowRunner()
    if settings.worker_workflow_runner == "unsandboxed":
        return UnsandboxedWorkflowRunner()
    restrictions = SandboxRestrictions.default.with_passthrough_modules("workflows", "activities")
    return SandboxedWorkflowRunner(restrictions=restrictions)


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Build the clients, run the worker until `stop` (or a signal), then shut down."""
    dsn = str(settings.database_url)
    await check_postgres(dsn)
    host, port = settings.temporal_host_port
    await check_tcp(host, port, "TEMPORAL_ADDRESS", "start it with `travis-logs dev`")
    async with AsyncExitStack() as stack:
        pool = await create_pool(dsn, max_size=settings.worker_db_pool_size)
        stack.push_async_callback(pool.close)
        s3 = await stack.enter_async_context(s3_client(settings))
        client = await connect(settings)
        store = ArchiveStore(s3, settings.s3_bucket)
        async with build_worker(client, settings, lifecycle_activities(pool, store)):
            log.info(
                "worker polling %s on %s", settings.temporal_task_queue, settings.temporal_address
            )
            await stop.wait()
            log.info("stopping: finishing running activities")
    log.info("worker stopped")


def main(args: argparse.Namespace, settings: Settings) -> int:
    asyncio.run(run_until_stopped(lambda stop: serve(settings, stop)))
    return 0
