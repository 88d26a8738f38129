"""Migrating a travis-logs database in place: every row kept, merged or recorded, none lost."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC

import asyncpg
import pytest
import pytest_asyncio

from tests import legacy
from tests.helpers import with_database
from travis_logs.db import admin_dsn
from travis_logs.migrate import available, migrate
from travis_logs.settings import Settings

pytestmark = pytest.mark.services  # PostgreSQL, through databases of its own


@pytest_asyncio.fixture
async def empty_database(defaults: Settings, job_id: int) -> AsyncIterator[str]:
    """A database of its own, dropped afterwards."""
    name = f"travis_logs_test_adopt_{job_id}"
    dsn = with_database(str(defaults.database_url), name)
    admin = await asyncpg.connect(admin_dsn(dsn))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield dsn
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def _counts(conn: asyncpg.Connection, source: str, reason: str) -> int:
    count: int = await conn.fetchval(
        "SELECT count(*) FROM adoption_merges WHERE source = $1 AND reason = $2", source, reason
    )
    return count


@pytest.mark.parametrize("shape", sorted(legacy.SHAPES))
async def test_adoption_keeps_every_row(
    empty_database: str, new_job_id: Iterator[int], shape: str
) -> None:
    """Each seeded row is in its table or, whole, in adoption_merges; first copies stay."""
    seeded = await legacy.create(empty_database, shape, new_job_id)
    applied = await migrate(empty_database)
    assert applied == [m.version for m in available()]
    conn = await asyncpg.connect(empty_database)
    try:
        logs = await conn.fetchval("SELECT count(*) FROM logs")
        parts = await conn.fetchval("SELECT count(*) FROM log_parts")
        merged = {
            r["source"]: r["n"]
            for r in await conn.fetch(
                "SELECT source, count(*) AS n FROM adoption_merges GROUP BY 1"
            )
        }
        assert logs + merged["logs"] == seeded.log_rows
        assert parts + merged["log_parts"] == seeded.part_rows
        assert await _counts(conn, "logs", "duplicate_job_id") == 1
        assert await _counts(conn, "logs", "no_job_id") == 1
        # Part 1 of the duplicate row, the repeated part 1, and the parts of no (job's) log.
        assert await _counts(conn, "log_parts", "duplicate_number") == 2
        assert await _counts(conn, "log_parts", "orphan_part") == 2
        kept = await conn.fetch(
            "SELECT p.number, p.content FROM log_parts p JOIN logs l ON l.id = p.log_id"
            " WHERE l.job_id = $1 ORDER BY p.number",
            seeded.job("duplicate_logs"),
        )
        assert [(r["number"], r["content"]) for r in kept] == [
            (0, "one 0\n"),
            (1, "one 1\n"),
            (2, "two 2\n"),
            (3, ""),
        ]
        dropped = await conn.fetchval(
            "SELECT row->>'content' FROM adoption_merges WHERE reason = 'duplicate_number'"
            " AND job_id = $1",
            seeded.job("duplicate_parts"),
        )
        assert dropped == "y again\n"
    finally:
        await conn.close()


async def test_adopted_rows_take_the_new_shape(
    empty_database: str, new_job_id: Iterator[int]
) -> None:
    """UTC timestamps, final numbers, content versions and the new constraints."""
    seeded = await legacy.create(empty_database, "2016", new_job_id)
    await migrate(empty_database)
    conn = await asyncpg.connect(empty_database)
    try:
        final = await conn.fetchrow(
            "SELECT final_number, content_version, created_at FROM logs WHERE job_id = $1",
            seeded.job("final_not_aggregated"),
        )
        assert final["final_number"] == 2
        assert final["content_version"] == 0
        assert final["created_at"] == legacy.LONG_AGO.replace(tzinfo=UTC)
        versions = await conn.fetch(
            "SELECT content_version FROM logs WHERE job_id = ANY($1::bigint[])",
            [seeded.job("aggregated_not_archived"), seeded.job("purged")],
        )
        assert [r["content_version"] for r in versions] == [1, 1]
        log_id = await conn.fetchval(
            "SELECT id FROM logs WHERE job_id = $1", seeded.job("duplicate_parts")
        )
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute("INSERT INTO logs (job_id) VALUES ($1)", seeded.job("purged"))
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute("INSERT INTO log_parts (log_id, number) VALUES ($1, 0)", log_id)
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute("INSERT INTO log_parts (log_id, number) VALUES (-1, 0)")
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations_sequel") == 3
    finally:
        await conn.close()
    assert await migrate(empty_database) == []
