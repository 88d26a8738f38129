"""purge_log refuses what is not verified; replace_content is PUT /logs, applied once."""

from __future__ import annotations

import asyncpg
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.aggregate import AggregateActivities
from activities.archive import ArchiveActivities
from activities.models import (
    AggregateInput,
    ArchiveInput,
    PurgeInput,
    RemoveArchiveInput,
    ReplaceInput,
    VerifyInput,
)
from activities.purge import PurgeActivities
from activities.replace import ReplaceActivities
from api.uploads import stage
from tests.helpers import log_row, store_parts, stored_numbers
from travis_logs.archive_store import ArchiveStore, sha256_hex

env = ActivityEnvironment()


async def test_purge_refuses_an_unverified_log(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """Without a verified archive of this version, content and parts stay."""
    await store_parts(pool, job_id, {0: "a\n"}, final=0)
    await env.run(AggregateActivities(pool, store).aggregate_log, AggregateInput(job_id))
    refused = await env.run(PurgeActivities(pool).purge_log, PurgeInput(job_id, 1))
    assert not refused.purged and "no verified archive" in refused.reason
    assert (await log_row(pool, job_id))["content"] == "a\n"
    assert await stored_numbers(pool, job_id) == [0]


async def test_purge_refuses_a_version_the_log_has_moved_past(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """Version 1 archived and verified, then a late part merged (version 2): purging version 1
    would drop a part its archive does not hold, so the content and every part stay."""
    await store_parts(pool, job_id, {0: "a\n"})
    aggregate = AggregateActivities(pool, store).aggregate_log
    await env.run(aggregate, AggregateInput(job_id))
    archive = ArchiveActivities(pool, store)
    written = await env.run(archive.archive_log, ArchiveInput(job_id))
    check = VerifyInput(job_id, written.content_version, written.size, written.sha256)
    assert (await env.run(archive.verify_archive, check)).verified
    await store_parts(pool, job_id, {1: "b\n"}, final=1)
    await env.run(aggregate, AggregateInput(job_id))
    refused = await env.run(PurgeActivities(pool).purge_log, PurgeInput(job_id, 1))
    assert not refused.purged and "the content changed (version 2" in refused.reason
    row = await log_row(pool, job_id)
    assert row["content"] == "a\nb\n" and row["purged_at"] is None
    assert await stored_numbers(pool, job_id) == [0, 1]


async def test_replace_is_put_logs_and_a_repeated_request_is_a_no_op(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """Parts deleted, content set, index and final reset; the same request twice bumps once."""
    await store_parts(pool, job_id, {0: "a\n", 1: ""}, final=1)
    replace = ReplaceActivities(pool, store)
    change = await stage(pool, job_id, "new\n", removed_by=None)
    request = ReplaceInput(job_id, change.upload_id, change.sha256, None, request_id="r-1")
    first = await env.run(replace.replace_content, request)
    await store_parts(pool, job_id, {0: "restarted\n"})  # the restarted job's first part
    again = await env.run(replace.replace_content, request)
    assert again == first
    row = await log_row(pool, job_id)
    assert row["content"] == "new\n" and row["aggregated_at"] is not None
    assert row["final_number"] is None and row["part_numbers"] == []
    assert await stored_numbers(pool, job_id) == [0]  # the retry deleted nothing new
    assert await pool.fetchval("SELECT count(*) FROM log_uploads WHERE job_id = $1", job_id) == 0


async def test_replace_creates_the_row_and_clearing_removes_the_archive(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """PUT for an unknown job creates its log; clearing deletes the archived object."""
    replace = ReplaceActivities(pool, store)
    done = await env.run(replace.replace_content, ReplaceInput(job_id, None, None, 42, "r-2"))
    await store.put(job_id, b"old\n", version=0, parts=1, if_match=None)
    await store.put_index(job_id, b"{}", version=0, log_sha256=sha256_hex(b"old\n"))
    await pool.execute("UPDATE logs SET archive_index = '{}' WHERE job_id = $1", job_id)
    removal = RemoveArchiveInput(job_id, done.content_version)
    assert (await env.run(replace.remove_archive, removal)).removed
    assert await store.fetch(job_id) is None
    assert await store.fetch_index(job_id) is None  # the index goes with the log,
    row = await log_row(pool, job_id)
    in_row = await pool.fetchval("SELECT archive_index FROM logs WHERE job_id = $1", job_id)
    assert in_row is None  # wherever it was kept
    assert row["id"] == done.log_id and row["removed_by"] == 42 and row["content"] is None
    assert row["aggregated_at"] is None and row["removed_at"] is not None


@pytest.mark.parametrize(
    ("tamper", "kind"),
    [
        ("DELETE FROM log_uploads WHERE id = $1", "UploadMissing"),
        ("UPDATE log_uploads SET content = 'other' WHERE id = $1", "UploadMismatch"),
    ],
)
async def test_replace_refuses_an_upload_it_cannot_trust(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int, tamper: str, kind: str
) -> None:
    """A claim check whose row is gone or whose text changed fails for good; nothing changes."""
    await store_parts(pool, job_id, {0: "a\n"})
    change = await stage(pool, job_id, "new\n", removed_by=None)
    await pool.execute(tamper, change.upload_id)
    request = ReplaceInput(job_id, change.upload_id, change.sha256, None, "r-3")
    with pytest.raises(ApplicationError) as refused:
        await env.run(ReplaceActivities(pool, store).replace_content, request)
    assert (refused.value.type, refused.value.non_retryable) == (kind, True)
    assert await stored_numbers(pool, job_id) == [0]
