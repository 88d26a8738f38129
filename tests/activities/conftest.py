"""Fixtures for activity tests: the archive store on this session's moto bucket."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tests.helpers import open_store
from travis_logs.archive_store import ArchiveStore
from travis_logs.settings import Settings


@pytest_asyncio.fixture
async def store(
    defaults: Settings, s3_endpoint: str, s3_bucket: str
) -> AsyncIterator[ArchiveStore]:
    on_moto = defaults.model_copy(update={"s3_endpoint_url": s3_endpoint, "s3_bucket": s3_bucket})
    async with open_store(on_moto) as archive:
        yield archive
