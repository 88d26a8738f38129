"""LogWorkflow on the dev server: a log archived with a gap is flagged until its part comes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from tests.helpers import assert_eventually, store_parts
from tests.workflows.support import fast, record, send
from travis_logs.archive_store import ArchiveStore
from travis_logs.settings import Settings
from workers.temporal_worker import build_worker, lifecycle_activities
from workflows.log_workflow import LogWorkflow
from workflows.models import LOG_INCOMPLETE, LogState


@pytest_asyncio.fixture
async def waiting(
    temporal_client: Client, settings: Settings, pool: asyncpg.Pool, store: ArchiveStore
) -> AsyncIterator[Settings]:
    """A worker whose incomplete runs stay open 30 s for their missing parts (no grace else)."""
    lingering = fast(settings, logs_incomplete_grace_s=30)
    async with build_worker(temporal_client, lingering, lifecycle_activities(pool, store)):
        yield lingering


async def test_missing_part_flags_the_run_until_it_is_merged(
    waiting: Settings,
    temporal_client: Client,
    pool: asyncpg.Pool,
    store: ArchiveStore,
    job_id: int,
) -> None:
    """Parts 1 and 3 missing: status and `LogIncomplete` say so, the run lingers; the late
    parts merge in order, the flag clears (one upsert each way) and the run ends."""
    early = {0: "a\n", 2: "c\n", 4: "e\n", 5: ""}
    await store_parts(pool, job_id, early, final=5)
    handle = await send(temporal_client, waiting, job_id, early, final=5)

    async def flagged() -> None:
        status = await handle.query(LogWorkflow.status)
        assert status.state == LogState.DONE and status.missing_parts == [[1, 1], [3, 3]]
        assert (await handle.describe()).typed_search_attributes.get(LOG_INCOMPLETE) is True

    await assert_eventually(flagged)
    late = {1: "b\n", 3: "d\n"}
    await store_parts(pool, job_id, late)
    await send(temporal_client, waiting, job_id, late, final=None)
    state = await handle.result()
    assert state.missing_parts == [] and state.state == LogState.DONE
    assert await store.fetch(job_id) == b"a\nb\nc\nd\ne\n"
    assert (await handle.describe()).typed_search_attributes.get(LOG_INCOMPLETE) is False
    assert set(state.stats.timeline) == {
        "first_part",
        "final_part",
        "aggregated",
        "archived",
        "verified",
        "purged",
    }
    flags = [
        e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
        async for e in handle.fetch_history_events()
        if e.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
    ]
    # One upsert sets the flag (round one), one clears it (round two), none carries it along.
    assert [f["LogIncomplete"].data for f in flags if "LogIncomplete" in f] == [b"true", b"false"]
    await record(handle, "incomplete_then_complete")
