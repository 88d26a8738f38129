"""aggregate_log and inspect_log against real PostgreSQL (and the S3 archive after purge)."""

from __future__ import annotations

import random

import asyncpg
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import merge_in_db
from activities.aggregate import AggregateActivities
from activities.archive import ArchiveActivities
from activities.merge_in_db import execute
from activities.models import (
    AggregateInput,
    ArchiveInput,
    InspectInput,
    PurgeInput,
    VerifyInput,
)
from activities.purge import PurgeActivities
from tests.helpers import log_row, store_parts, stored_numbers
from tests.merge_layouts import layout, merged_today
from travis_logs.archive_store import ArchiveStore
from travis_logs.errors import ArchiveMismatch
from travis_logs.log_limit import marker
from travis_logs.merge import PartIndex
from travis_logs.merge_plan import plan

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


async def test_multibyte_text_around_the_pieces_merges_byte_exact(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """Content ranges are cut by byte offset: multibyte characters on every side of a piece
    (an unindexed head, held parts, late parts between them) come out whole."""
    await store_parts(pool, job_id, {0: "é€", 2: "𝄞\n"})
    await pool.execute("UPDATE logs SET content = 'ñ→' WHERE job_id = $1", job_id)  # PUT
    activities = AggregateActivities(pool, store)
    await env.run(activities.aggregate_log, AggregateInput(job_id))
    await store_parts(pool, job_id, {1: "ü", 3: "€ß"})
    merged = await env.run(activities.aggregate_log, AggregateInput(job_id))
    row = await log_row(pool, job_id)
    assert row["content"] == "ñ→é€ü𝄞\n€ß"
    assert row["part_numbers"] == [0, 1, 2, 3] and row["part_sizes"] == [5, 2, 5, 5]
    assert (merged.merged, merged.size) == (2, len("ñ→é€ü𝄞\n€ß".encode()))


async def test_a_cut_log_merged_in_the_database_is_archived_byte_exact(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """A log past the limit: head, marker, tail as `finish` makes them, and the archive holds
    exactly those bytes, also after a later part replaces the marker's counts."""
    parts = {0: "a✓\n", 1: "b€", 2: "mid\n", 3: "mid\n", 4: "𝄞\n", 5: "ö"}
    await store_parts(pool, job_id, parts)
    await pool.execute(
        "UPDATE logs SET elided_from = 2, tail_from = 4, head_bytes = 8, tail_bytes = 7,"
        " elided_bytes = 8, elided_parts = 2 WHERE job_id = $1",
        job_id,
    )
    await pool.execute(  # the ingest does not keep the middle
        "DELETE FROM log_parts WHERE number IN (2, 3)"
        " AND log_id = (SELECT id FROM logs WHERE job_id = $1)",
        job_id,
    )
    activities = AggregateActivities(pool, store)
    first = await env.run(activities.aggregate_log, AggregateInput(job_id))
    line = marker(8, 2, line_open=True).decode()
    assert (await log_row(pool, job_id))["content"] == f"a✓\nb€{line}𝄞\nö"
    assert first.size == len(f"a✓\nb€{line}𝄞\nö".encode()) and first.elided_parts == 2
    await store_parts(pool, job_id, {6: "→"})
    await pool.execute("UPDATE logs SET elided_parts = 3 WHERE job_id = $1", job_id)
    await env.run(activities.aggregate_log, AggregateInput(job_id))
    row = await log_row(pool, job_id)
    expected = f"a✓\nb€{marker(8, 3, line_open=True).decode()}𝄞\nö→".encode()
    assert row["content"].encode() == expected
    assert row["part_numbers"] == [0, 1, 2, 4, 5, 6]
    assert sum(row["part_sizes"]) == len(expected)
    written = await env.run(ArchiveActivities(pool, store).archive_log, ArchiveInput(job_id))
    assert await store.fetch_recorded(job_id, written.size, written.sha256) == expected


async def test_a_part_gone_before_the_merge_writes_nothing(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """The statement checks every piece against its planned size: a plan made from parts
    that changed since is not written (the activity fails and is retried)."""
    log_id = await store_parts(pool, job_id, {0: "a\n", 1: "b\n"})
    planned = plan(0, PartIndex(), [(0, 2), (1, 2)], None)
    await pool.execute("DELETE FROM log_parts WHERE log_id = $1 AND number = 1", log_id)
    async with pool.acquire() as conn:
        with pytest.raises(ApplicationError, match="changed during aggregation"):
            await execute(conn, log_id, planned)
    assert (await log_row(pool, job_id))["content"] is None


@pytest.mark.parametrize("chunk", [1 << 20, 3])
async def test_the_statement_merges_random_layouts_as_the_merge_over_bytes(
    pool: asyncpg.Pool,
    store: ArchiveStore,
    job_id: int,
    chunk: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PostgreSQL executes a plan as `run` does: random held, fresh and cut layouts with
    multibyte text give the bytes and index of `merge_unheld` (and `finish`), also when the
    content's ranges are passed in chunks that split characters."""
    monkeypatch.setattr(merge_in_db, "_CHUNK_BYTES", chunk)
    log_id = await store_parts(pool, job_id, {})
    for seed in range(40):
        base, index, stored, cut = layout(random.Random(seed))
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("DELETE FROM log_parts WHERE log_id = $1", log_id)
            await conn.executemany(
                "INSERT INTO log_parts (log_id, number, content) VALUES ($1, $2, $3)",
                [(log_id, n, body.decode()) for n, body in stored],
            )
            await conn.execute("UPDATE logs SET content = $2 WHERE id = $1", log_id, base.decode())
            planned = plan(len(base), index, [(n, len(b)) for n, b in stored], cut)
            written = await execute(conn, log_id, planned)
            content = await conn.fetchval("SELECT content FROM logs WHERE id = $1", log_id)
        expected = merged_today(base, index, stored, cut)
        assert content.encode() == expected.body, seed
        assert (written.size, written.index) == (len(expected.body), expected.index), seed
