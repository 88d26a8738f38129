"""Fixtures every test builds on: real PostgreSQL, RabbitMQ, Temporal and S3 (moto).

Each test session gets its own database (migrated, dropped at the end), its own RabbitMQ
vhost, a Temporal dev server and a time-skipping server from the pip-installed binaries,
and a moto S3 server on a free port. Per test: a fresh task queue, fresh AMQP names and a
unique job id keep tests apart without truncating anything.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator

import aioboto3
import asyncpg
import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tests.helpers import (
    free_port,
    open_store,
    start_dev_server,
    start_time_skipping_server,
    with_database,
)
from travis_logs.archive_store import ArchiveStore
from travis_logs.db import admin_dsn, create_pool
from travis_logs.migrate import migrate
from travis_logs.settings import Settings

_RUN = uuid.uuid4().hex[:8]
_job_ids = itertools.count(int(uuid.uuid4().int % 10**6) * 1000 + 1)

# moto and boto read credentials from the environment; moto accepts any.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")


# The fixtures that start or reach a server; a test using any of them, directly or through
# other fixtures, is marked `services`, and `make test-fast` (-m "not services") leaves it out.
SERVICE_FIXTURES = frozenset(
    {
        "database_url",  # PostgreSQL
        "amqp_url",  # RabbitMQ
        "s3_endpoint",  # moto S3
        "temporal_env",  # Temporal dev server
        "time_skipping_env",  # Temporal test server
        "pusher_port",  # the local Pusher server, with pusher-js from Node
        "pusher_js",  # Node and pusher-js
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & SERVICE_FIXTURES or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.services)


@pytest.fixture(scope="session")
def defaults() -> Settings:
    """Settings as the environment gives them (loopback defaults), before test overrides."""
    return Settings(_env_file=None)


# --- PostgreSQL -----------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="session")
async def database_url(defaults: Settings) -> AsyncIterator[str]:
    """A throwaway database with every migration applied; dropped after the session."""
    dsn = with_database(str(defaults.database_url), f"travis_logs_test_{_RUN}")
    await migrate(dsn)
    yield dsn
    conn = await asyncpg.connect(admin_dsn(dsn))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "travis_logs_test_{_RUN}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest_asyncio.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(database_url, max_size=10)
    yield p
    await p.close()


@pytest.fixture
def job_id() -> int:
    """A job id no other test in this session uses."""
    return next(_job_ids)


@pytest.fixture
def new_job_id() -> Iterator[int]:
    """A factory-like iterator of unused job ids, for tests that need several."""
    return _job_ids


# --- RabbitMQ -------------------------------------------------------------------------------


def _rabbitmqctl(*args: str) -> bool:
    try:
        subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


@pytest.fixture(scope="session")
def amqp_url(defaults: Settings) -> Iterator[str]:
    """A vhost of our own when rabbitmqctl can make one; otherwise the default vhost."""
    base = str(defaults.rabbitmq_url).rstrip("/")
    vhost = f"travis-logs-test-{_RUN}"
    if _rabbitmqctl("add_vhost", vhost) and _rabbitmqctl(
        "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"
    ):
        yield f"{base}/{vhost}"
        _rabbitmqctl("delete_vhost", vhost)
    else:
        yield f"{base}/"


# --- S3 (moto) ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer  # imported here: the fast tier never needs it

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest_asyncio.fixture(scope="session")
async def s3_bucket(s3_endpoint: str) -> str:
    name = f"travis-logs-test-{_RUN}"
    async with aioboto3.Session().client(
        "s3", endpoint_url=s3_endpoint, region_name="us-east-1"
    ) as s3:
        await s3.create_bucket(Bucket=name)
    return name


@pytest_asyncio.fixture
async def store(
    defaults: Settings, s3_endpoint: str, s3_bucket: str
) -> AsyncIterator[ArchiveStore]:
    """The archive store on this session's moto bucket (lifecycle tests have their own)."""
    on_moto = defaults.model_copy(update={"s3_endpoint_url": s3_endpoint, "s3_bucket": s3_bucket})
    async with open_store(on_moto) as archive:
        yield archive


# --- Temporal -------------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real dev server (SQL visibility, search attributes, updates), in memory."""
    env = await start_dev_server()
    yield env
    await env.shutdown()


@pytest_asyncio.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The Java test server: timers are skipped while a test awaits a result."""
    env = await start_time_skipping_server()
    yield env
    await env.shutdown()


@pytest.fixture
def temporal_client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


# --- Node -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def pusher_js() -> None:
    """pusher-js in node_modules (installed when missing), for tests that run it under Node."""
    from tests.pusher_support import ensure_pusher_js

    ensure_pusher_js()


# --- Settings for one test ------------------------------------------------------------------


@pytest.fixture
def settings(
    defaults: Settings,
    database_url: str,
    amqp_url: str,
    s3_endpoint: str,
    s3_bucket: str,
    temporal_env: WorkflowEnvironment,
) -> Settings:
    """Settings pointing at this session's services, with names of this test's own."""
    tag = uuid.uuid4().hex[:10]
    config = temporal_env.client.service_client.config
    return defaults.model_copy(
        update={
            "database_url": database_url,
            "rabbitmq_url": amqp_url,
            "temporal_address": config.target_host,
            "temporal_task_queue": f"tq-{tag}",
            "s3_endpoint_url": s3_endpoint,
            "s3_bucket": s3_bucket,
            "amqp_exchange": f"reporting-{tag}",
            "amqp_queue": f"reporting.jobs.logs-{tag}",
            "amqp_routing_key": "reporting.jobs.logs",
        }
    )
