"""The SQL behind the read routes; each read of a row and its parts shares one snapshot."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal

import asyncpg

LOG_COLUMNS = (
    "id, job_id, content, removed_by, created_at, updated_at, aggregated_at, archived_at,"
    " purged_at, removed_at, archiving, archive_verified"
)
LogKey = Literal["job_id", "id"]

_LOG_BY = {
    "job_id": f"SELECT {LOG_COLUMNS} FROM logs WHERE job_id = $1",
    "id": f"SELECT {LOG_COLUMNS} FROM logs WHERE id = $1",
}
# FetchLog's aggregation on demand: the stored parts in number order, nothing written.
_HOT_CONTENT = "SELECT string_agg(content, '' ORDER BY number) FROM log_parts WHERE log_id = $1"
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


def is_hot(row: asyncpg.Record) -> bool:
    """Not (or no longer) aggregated: the content is whatever the parts say."""
    return row["aggregated_at"] is None or row["content"] is None


async def log_row(conn: asyncpg.Connection, key: LogKey, value: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await conn.fetchrow(_LOG_BY[key], value)
    return row


async def hot_content(conn: asyncpg.Connection, log_id: int) -> str | None:
    content: str | None = await conn.fetchval(_HOT_CONTENT, log_id)
    return content


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


async def log_id_for_job(pool: asyncpg.Pool, job_id: int) -> int | None:
    log_id: int | None = await pool.fetchval("SELECT id FROM logs WHERE job_id = $1", job_id)
    return log_id


async def log_by_id(pool: asyncpg.Pool, log_id: int) -> asyncpg.Record | None:
    row: asyncpg.Record | None = await pool.fetchrow(_LOG_BY["id"], log_id)
    return row


async def db_now(pool: asyncpg.Pool) -> Any:
    return await pool.fetchval("SELECT now()")
