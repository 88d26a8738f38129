"""Fixtures for LogWorkflow tests: fast timings, the archive store and a worker to run them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.worker import Worker

from tests.helpers import open_store
from tests.workflows.support import fast
from travis_logs.archive_store import ArchiveStore
from travis_logs.settings import Settings
from workers.temporal_worker import build_worker, lifecycle_activities


@pytest.fixture
def quick(settings: Settings) -> Settings:
    """Settings with short lifecycle timings (quiet 50 ms, no grace window, no purge delay)."""
    return fast(settings)


@pytest_asyncio.fixture
async def store(quick: Settings) -> AsyncIterator[ArchiveStore]:
    async with open_store(quick) as archive:
        yield archive


@pytest_asyncio.fixture
async def worker(
    temporal_client: Client, quick: Settings, pool: asyncpg.Pool, store: ArchiveStore
) -> AsyncIterator[Worker]:
    """The production worker (build_worker) on this test's task queue, on the dev server."""
    async with build_worker(temporal_client, quick, lifecycle_activities(pool, store)) as running:
        yield running
