"""An adopted travis-logs database with a real worker, for reconcile, sweeper and status tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
from temporalio.client import Client
from temporalio.worker import Worker

from tests import legacy
from tests.helpers import open_store, with_database
from tests.workflows.support import fast
from travis_logs.archive_store import ArchiveStore
from travis_logs.db import admin_dsn, create_pool
from travis_logs.migrate import migrate
from travis_logs.settings import Settings
from workers.temporal_worker import build_worker, lifecycle_activities, sweeper_activities


@dataclass
class Adopted:
    settings: Settings
    pool: asyncpg.Pool
    store: ArchiveStore
    seeded: legacy.Seeded


@asynccontextmanager
async def adopted_database(
    settings: Settings, jobs: Iterator[int], shape: str = "2016"
) -> AsyncIterator[Adopted]:
    """A travis-logs database seeded in every state, migrated, with its archives in S3."""
    name = f"travis_logs_test_ops_{uuid.uuid4().hex[:10]}"
    dsn = with_database(str(settings.database_url), name)
    admin = await asyncpg.connect(admin_dsn(dsn))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        seeded = await legacy.create(dsn, shape, jobs)
        await migrate(dsn)
        quick = fast(settings, database_url=dsn, sweeper_schedule_id=f"sweeper-{name}")
        pool = await create_pool(dsn, max_size=10)
        try:
            async with open_store(quick) as store:
                s3 = store.client
                for log in seeded.logs.values():
                    if log.archived is not None:  # as travis-logs wrote it: no metadata
                        await s3.put_object(
                            Bucket=quick.s3_bucket,
                            Key=ArchiveStore.key(log.job_id),
                            Body=log.archived.encode(),
                            ContentType="text/plain",
                        )
                yield Adopted(quick, pool, store, seeded)
        finally:
            await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def worker_for(client: Client, adopted: Adopted) -> Worker:
    """The production worker: lifecycle activities and the sweeper's."""
    activities = lifecycle_activities(adopted.pool, adopted.store) + sweeper_activities(
        adopted.pool, client, adopted.settings
    )
    return build_worker(client, adopted.settings, activities)


async def runs_of(client: Client, job_id: int) -> list[str]:
    """The statuses of every run of the job's workflow that visibility lists."""
    query = f"WorkflowId = 'log-{job_id}'"
    return [wf.status.name if wf.status else "" async for wf in client.list_workflows(query)]
