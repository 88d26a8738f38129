"""aggregate_log and inspect_log against real PostgreSQL (and the S3 archive after purge)."""

from __future__ import annotations

import asyncpg
import pytest
from temporalio.testing import ActivityEnvironment

from activities.aggregate import AggregateActivities
from activities.archive import ArchiveActivities
from activities.models import (
    AggregateInput,
    ArchiveInput,
    InspectInput,
    PurgeInput,
    VerifyInput,
)
from activities.purge import PurgeActivities
from tests.helpers import log_row, store_parts, stored_numbers
from travis_logs.archive_store import ArchiveStore
from travis_logs.errors import ArchiveMismatch

env = ActivityEnvironment()


async def archive_and_purge(pool: asyncpg.Pool, store: ArchiveStore, job_id: int) -> None:
    """The rest of one lifecycle, straight through the activities."""
    archive = ArchiveActivities(pool, store)
    written = await env.run(archive.archive_log, ArchiveInput(job_id))
    check = VerifyInput(job_id, written.content_version, written.size, written.sha256)
    assert (await env.run(archive.verify_archive, check)).verified
    purge = PurgeActivities(pool)
    assert (await env.run(purge.purge_log, PurgeInput(job_id, written.content_version))).purged


async def test_aggregation_is_set_exact_and_idempotent(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """The parts merged are exactly the parts indexed; running it again merges nothing."""
    await store_parts(pool, job_id, {1: "b\n", 0: "a\n"})
    activities = AggregateActivities(pool, store)
    first = await env.run(activities.aggregate_log, AggregateInput(job_id))
    again = await env.run(activities.aggregate_log, AggregateInput(job_id))
    assert (first.merged, first.parts, first.content_version) == (2, 2, 1)
    assert (again.merged, again.content_version) == (0, 1)
    row = await log_row(pool, job_id)
    assert row["content"] == "a\nb\n" and row["part_numbers"] == [0, 1]
    assert row["part_sizes"] == [2, 2]


async def test_part_stored_after_aggregation_survives_purge(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """Purge deletes only the parts the verified archive holds, never a newer one."""
    await store_parts(pool, job_id, {0: "a\n", 1: "b\n"}, final=1)
    await env.run(AggregateActivities(pool, store).aggregate_log, AggregateInput(job_id))
    archive = ArchiveActivities(pool, store)
    written = await env.run(archive.archive_log, ArchiveInput(job_id))
    check = VerifyInput(job_id, written.content_version, written.size, written.sha256)
    await env.run(archive.verify_archive, check)
    await store_parts(pool, job_id, {2: "c\n"})  # committed after the aggregation
    purged = await env.run(PurgeActivities(pool).purge_log, PurgeInput(job_id, 1))
    assert purged.purged and purged.parts_deleted == 2
    assert await stored_numbers(pool, job_id) == [2]


async def test_merge_after_purge_starts_from_the_archive(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """A purged log plus a late middle part becomes the whole log, in number order."""
    await store_parts(pool, job_id, {0: "a\n", 2: "c ✓\n", 3: ""}, final=3)
    activities = AggregateActivities(pool, store)
    await env.run(activities.aggregate_log, AggregateInput(job_id))
    await archive_and_purge(pool, store, job_id)
    await store_parts(pool, job_id, {1: "b\n"})
    merged = await env.run(activities.aggregate_log, AggregateInput(job_id))
    assert merged.from_archive and merged.merged == 1 and merged.content_version == 2
    row = await log_row(pool, job_id)
    assert row["content"] == "a\nb\nc ✓\n" and row["purged_at"] is None
    assert row["part_numbers"] == [0, 1, 2, 3]


async def test_damaged_archive_is_never_the_base_of_a_merge(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """If the purged log's archive no longer matches its record, nothing is written."""
    await store_parts(pool, job_id, {0: "a\n", 1: ""}, final=1)
    activities = AggregateActivities(pool, store)
    await env.run(activities.aggregate_log, AggregateInput(job_id))
    await archive_and_purge(pool, store, job_id)
    await store.client.put_object(Bucket=store.bucket, Key=store.key(job_id), Body=b"x\n")
    await store_parts(pool, job_id, {2: "late\n"})
    # A plain exception: the worker reports it as type "ArchiveMismatch", retryable.
    with pytest.raises(ArchiveMismatch):
        await env.run(activities.aggregate_log, AggregateInput(job_id))
    row = await log_row(pool, job_id)
    assert row["content"] is None and row["content_version"] == 1


async def test_inspect_reads_age_on_the_database_clock_and_pending_parts(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """The snapshot's part age comes from the database's now(); pending excludes indexed parts."""
    await store_parts(pool, job_id, {0: "a\n"}, age_s=3600)
    activities = AggregateActivities(pool, store)
    await env.run(activities.aggregate_log, AggregateInput(job_id))
    await store_parts(pool, job_id, {1: "b\n"}, age_s=600)
    snapshot = await env.run(activities.inspect_log, InspectInput(job_id))
    assert snapshot.pending_parts == 1 and snapshot.final_number is None
    assert snapshot.newest_part_age_ms is not None
    assert 600_000 <= snapshot.newest_part_age_ms < 660_000
    missing = await env.run(activities.inspect_log, InspectInput(job_id + 10**9))
    assert missing.log_id is None


async def test_missing_parts_are_known_from_the_row_also_after_purge(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """The gap comes from the part index and final number, which outlive purge: a late part
    merged from the archive closes one gap and leaves the other."""
    await store_parts(pool, job_id, {0: "a\n", 2: "c\n", 4: "e\n", 5: ""}, final=5)
    activities = AggregateActivities(pool, store)
    first = await env.run(activities.aggregate_log, AggregateInput(job_id))
    assert first.missing == [[1, 1], [3, 3]]
    await archive_and_purge(pool, store, job_id)
    unchanged = await env.run(activities.aggregate_log, AggregateInput(job_id))
    assert unchanged.missing == [[1, 1], [3, 3]]

    await store_parts(pool, job_id, {3: "d\n"})
    late = await env.run(activities.aggregate_log, AggregateInput(job_id))
    assert late.from_archive and late.missing == [[1, 1]]
    row = await log_row(pool, job_id)
    assert row["content"] == "a\nc\nd\ne\n"
    assert row["verified_at"] is None and row["aggregated_at"] is not None
