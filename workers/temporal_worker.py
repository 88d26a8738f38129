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
from prometheus_client import start_http_server
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import (
    Interceptor,
    UnsandboxedWorkflowRunner,
    Worker,
    WorkerDeploymentConfig,
    WorkflowRunner,
)
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.aggregate import AggregateActivities
from activities.archive import ArchiveActivities
from activities.purge import PurgeActivities
from activities.reconcile import ReconcileActivities, Reconciler
from activities.redact import RedactActivities
from activities.replace import ReplaceActivities
from travis_logs.archive_store import ArchiveStore
from travis_logs.checks import check_postgres, check_tcp
from travis_logs.db import create_pool
from travis_logs.migrate import require_current
from travis_logs.ratelimit import RateLimiter
from travis_logs.s3 import s3_client
from travis_logs.settings import Settings
from travis_logs.temporal import connect, metrics_runtime
from workers.signals import run_until_stopped
from workflows.log_workflow import LogWorkflow
from workflows.reconcile import TemporalFixer
from workflows.schedule import ensure_sweeper_schedule
from workflows.sweeper import SweeperWorkflow

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    del parser  # everything comes from the environment (Settings)


def lifecycle_activities(pool: asyncpg.Pool, store: ArchiveStore) -> list[Callable[..., Any]]:
    """Every activity LogWorkflow calls, bound to the clients the entry point built."""
    aggregate = AggregateActivities(pool, store)
    archive = ArchiveActivities(pool, store)
    replace = ReplaceActivities(pool, store)
    purge = PurgeActivities(pool)
    redact = RedactActivities(pool, store)
    return [
        aggregate.inspect_log,
        aggregate.aggregate_log,
        archive.archive_log,
        archive.verify_archive,
        purge.purge_log,
        replace.replace_content,
        replace.remove_archive,
        redact.redact_log,
    ]


def sweeper_activities(
    pool: asyncpg.Pool, client: Client, settings: Settings
) -> list[Callable[..., Any]]:
    """The sweeper's reconcile_page, starting workflows through `client`."""
    fixer = TemporalFixer(client, settings, RateLimiter(settings.reconcile_rate_per_s))
    reconciler = Reconciler(
        pool, fixer, force_after_s=settings.logs_force_after_s, source="sweeper"
    )
    return [ReconcileActivities(pool, reconciler).reconcile_page]


def deployment_version(settings: Settings) -> WorkerDeploymentVersion:
    return WorkerDeploymentVersion(settings.temporal_deployment_name, settings.temporal_build_id)


class LogWorker(Worker):
    """A versioned worker: each log run stays on the build that started it (PINNED).

    On start it makes its build the deployment's current version when there is none yet
    (the first deployment); rolling out a later build is the operator's step
    (`temporal worker deployment set-current-version`, or `set_current_version`).
    """

    def __init__(self, client: Client, version: WorkerDeploymentVersion, **options: Any) -> None:
        config = WorkerDeploymentConfig(version=version, use_worker_versioning=True)
        super().__init__(client, deployment_config=config, **options)
        self._version_client = client
        self._version = version

    async def __aenter__(self) -> Worker:
        await super().__aenter__()
        await set_current_version(self._version_client, self._version, only_if_none=True)
        return self


async def set_current_version(
    client: Client,
    version: WorkerDeploymentVersion,
    *,
    only_if_none: bool = False,
    timeout_s: float = 30,
) -> None:
    """Route new runs to `version`; retried until the server has seen its pollers."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout_s
    while True:
        try:
            await _set_current(client, version, only_if_none)
            return
        except RPCError as err:
            if err.status == RPCStatusCode.UNIMPLEMENTED:
                return  # a server without Worker Versioning (the time-skipping test server)
            if loop.time() > give_up:
                raise
            await asyncio.sleep(0.1)  # the deployment appears once a poller reached the server


async def _set_current(
    client: Client, version: WorkerDeploymentVersion, only_if_none: bool
) -> None:
    service, namespace = client.workflow_service, client.namespace
    name = version.deployment_name
    described = await service.describe_worker_deployment(
        DescribeWorkerDeploymentRequest(namespace=namespace, deployment_name=name)
    )
    current = described.worker_deployment_info.routing_config.current_deployment_version
    if current.build_id == version.build_id or (only_if_none and current.build_id):
        return
    await service.set_worker_deployment_current_version(
        SetWorkerDeploymentCurrentVersionRequest(
            namespace=namespace,
            deployment_name=name,
            build_id=version.build_id,
            # Fails if another worker changed the deployment since the describe above.
            conflict_token=described.conflict_token,
        )
    )


def build_worker(
    client: Client,
    settings: Settings,
    activities: Sequence[Callable[..., Any]],
    *,
    interceptors: Sequence[Interceptor] = (),
) -> Worker:
    """The worker for the task queue, sized by settings (tests and benchmarks use it too)."""
    return LogWorker(
        client,
        deployment_version(settings),
        task_queue=settings.temporal_task_queue,
        workflows=[LogWorkflow, SweeperWorkflow],
        activities=activities,
        interceptors=interceptors,
        # Every open log is a cached workflow; an evicted one replays its history per task.
        max_cached_workflows=settings.worker_max_cached_workflows,
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_grace_s),
        sticky_queue_schedule_to_start_timeout=timedelta(seconds=settings.worker_sticky_timeout_s),
        workflow_runner=workflow_runner(settings),
    )


def _serve_metrics(settings: Settings, stack: AsyncExitStack) -> Runtime | None:
    """Serve prometheus-client's /metrics; the SDK's runtime serves its own (and lifecycle)."""
    if settings.worker_metrics_port:
        server, _ = start_http_server(settings.worker_metrics_port, addr=settings.metrics_host)
        stack.callback(server.server_close)
        stack.callback(server.shutdown)  # runs first: stops the serving thread
    if settings.temporal_metrics_port:
        return metrics_runtime(settings.temporal_metrics_port, settings.metrics_host)
    return None


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
    await require_current(dsn)
    host, port = settings.temporal_host_port
    await check_tcp(host, port, "TEMPORAL_ADDRESS", "start it with `travis-logs dev`")
    async with AsyncExitStack() as stack:
        pool = await create_pool(dsn, max_size=settings.worker_db_pool_size)
        stack.push_async_callback(pool.close)
        s3 = await stack.enter_async_context(s3_client(settings))
        client = await connect(settings, _serve_metrics(settings, stack))
        store = ArchiveStore.for_settings(s3, settings)
        activities = lifecycle_activities(pool, store) + sweeper_activities(pool, client, settings)
        async with build_worker(client, settings, activities):
            if settings.sweeper_enabled:
                await ensure_sweeper_schedule(client, settings)
            log.info(
                "worker polling %s on %s", settings.temporal_task_queue, settings.temporal_address
            )
            await stop.wait()
            log.info("stopping: finishing running activities")
    log.info("worker stopped")


def main(args: argparse.Namespace, settings: Settings) -> int:
    asyncio.run(run_until_stopped(lambda stop: serve(settings, stop)))
    return 0
