"""The SQL behind the read routes; each read of a row and its parts shares one snapshot."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

import asyncpg

from travis_logs.log_limit import CUT_COLUMNS
from travis_logs.logrow import TEXT_COLUMNS

LOG_COLUMNS = (
    "id, job_id, content, removed_by, created_at, updated_at, aggregated_at, archived_at,"
    f" purged_at, removed_at, archiving, archive_verified, {TEXT_COLUMNS}, {CUT_COLUMNS}"
)
LogKey = Literal["job_id", "id"]

_LOG_BY = {
    "job_id": f"SELECT {LOG_COLUMNS} FROM logs WHERE job_id = $1",
    "id": f"SELECT {LOG_COLUMNS} FROM logs WHERE id = $1",
}
# What GET /logs/:id adds to travis-api's fields: what completeness and the timeline read.
_LIFECYCLE = f"""
SELECT final_number, part_numbers, part_sizes, first_part_at, final_part_at, aggregated_at,
       archived_at, verified_at, purged_at, replaced_at, {CUT_COLUMNS},
       ARRAY(SELECT number FROM log_parts WHERE log_id = logs.id) AS stored_numbers
FROM logs WHERE id = $1
"""
# What a read merges like aggregation would: the part index, and the stored parts not in it.
_PART_INDEX = "SELECT part_numbers, part_sizes FROM logs WHERE id = $1"
_UNHELD_PARTS = """
SELECT p.number, p.content FROM log_parts p JOIN logs l ON l.id = p.log_id
WHERE p.log_id = $1 AND p.number <> ALL(l.part_numbers) ORDER BY p.number
"""
_PART_FILTER = """
FROM log_parts WHERE log_id = $1
  AND ($2::integer IS NULL OR number > $2)
  AND (cardinality($3::integer[]) = 0 OR number = ANY($3::integer[]))
ORDER BY number
"""
_PARTS_WITH_CONTENT = "SELECT id, number, content, final" + _PART_FILTER
_PARTS_WITHOUT_CONTENT = "SELECT id, number, final" + _PART_FILTER


@asynccontextmanager
async def snapshot(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    """A read-only repeatable-read transaction: a row and its parts as of one instant."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        yield conn


async def log_row(conn: asyncpg.Connection, key: LogKey, value: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(_LOG_BY[key], value)
    return row


async def lifecycle(conn: asyncpg.Connection, log_id: int) -> asyncpg.Record:
    """Final number, part index, stored part numbers and lifecycle timestamps of a log."""
    row: asyncpg.Record = await conn.fetchrow(_LIFECYCLE, log_id)
    return row


async def part_index(conn: asyncpg.Connection, log_id: int) -> tuple[list[int], list[int]]:
    """The numbers of the parts the log's content (or archive) holds, and their byte sizes."""
    row = await conn.fetchrow(_PART_INDEX, log_id)
    return list(row["part_numbers"]), list(row["part_sizes"])


async def unheld_parts(conn: asyncpg.Connection, log_id: int) -> list[tuple[int, bytes]]:
    """Stored parts whose numbers the content does not hold yet, in number order, as bytes."""
    rows = await conn.fetch(_UNHELD_PARTS, log_id)
    return [(r["number"], (r["content"] or "").encode()) for r in rows]


async def parts(
    conn: asyncpg.Connection,
    log_id: int,
    *,
    after: int | None = None,
    numbers: Sequence[int] = (),
    with_content: bool = True,
) -> list[dict[str, Any]]:
    """Stored parts in number order: `after` is strict, `numbers` filters when not empty."""
    sql = _PARTS_WITH_CONTENT if with_content else _PARTS_WITHOUT_CONTENT
    rows = await conn.fetch(sql, log_id, after, list(numbers))
    return [dict(r) for r in rows]


async def stored_bytes(conn: asyncpg.Connection, log_id: int) -> int:
    """The bytes of a log's stored parts, without reading them."""
    size: int = await conn.fetchval(
        "SELECT coalesce(sum(octet_length(content)), 0) FROM log_parts WHERE log_id = $1", log_id
    )
    return size


async def log_id_for_job(pool: asyncpg.Pool, job_id: int) -> int | None:
    log_id: int | None = await pool.fetchval("SELECT id FROM logs WHERE job_id = $1", job_id)
    return log_id


async def log_by_id(pool: asyncpg.Pool, log_id: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await pool.fetchrow(_LOG_BY["id"], log_id)
    return row


async def db_now(pool: asyncpg.Pool) -> Any:
    return await pool.fetchval("SELECT now()")
