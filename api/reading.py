"""travis-logs' FetchLog and FetchLogParts, plus what the viewer page starts from.

A log's content is wherever it lives now: the parts while the log is hot (joined in number
order on demand, nothing written), the `content` column once aggregated, the S3 archive once
purged.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from api import queries
from ingest.parts import clean
from travis_logs.archive_store import ArchiveStore

log = logging.getLogger(__name__)

AGGREGATED = "log aggregated"
UNAVAILABLE = "Your log is temporarily unavailable"


@dataclass(frozen=True)
class PartsQuery:
    """The filters of `GET /log-parts/:job_id`."""

    after: int | None = None
    numbers: Sequence[int] = ()
    require_all: bool = False
    with_content: bool = True


@dataclass
class ViewerLog:
    """A log as the viewer page starts from: finished text, or the parts so far."""

    job_id: int
    complete: bool = False
    content: str = ""
    parts: list[dict[str, Any]] = field(default_factory=list)
    removed_at: str | None = None
    removed_by: int | None = None


async def archived_text(archive: ArchiveStore, job_id: int) -> str | None:
    raw = await archive.fetch(job_id)
    if raw is None:
        log.warning("job %d: the log is purged but its archive is missing", job_id)
        return None
    return clean(raw)


async def read_log(
    pool: asyncpg.Pool, archive: ArchiveStore, key: queries.LogKey, value: int
) -> dict[str, Any] | None:
    """The row with `removed_by_id` and its current content; None when there is no row."""
    async with queries.snapshot(pool) as conn:
        row = await queries.log_row(conn, key, value)
        if row is None:
            return None
        hot = await queries.hot_content(conn, row["id"]) if queries.is_hot(row) else None
    result = dict(row)
    result["removed_by_id"] = result.pop("removed_by")
    result["content"] = await _content(archive, row, hot)
    return result


async def _content(archive: ArchiveStore, row: asyncpg.Record, hot: str | None) -> str | None:
    content: str | None = row["content"]
    if content is None and row["purged_at"] is not None:
        content = await archived_text(archive, row["job_id"])
    if not queries.is_hot(row):
        return content
    joined = (content or "") + (hot or "")
    return joined if joined.strip() else None  # FetchLog: blank is no log


def _pseudo(log_id: int, content: str) -> dict[str, Any]:
    return {"number": 0, "log_id": log_id, "content": content}


async def read_parts(
    pool: asyncpg.Pool, job_id: int, query: PartsQuery
) -> list[dict[str, Any]] | None:
    """FetchLogParts: the stored parts, or a pseudo-part; None when the job has no log."""
    async with queries.snapshot(pool) as conn:
        row = await conn.fetchrow("SELECT id, aggregated_at FROM logs WHERE job_id = $1", job_id)
        if row is None:
            return None
        if row["aggregated_at"] is not None:
            return [_pseudo(row["id"], AGGREGATED)]  # read the log instead
        found = await queries.parts(
            conn,
            row["id"],
            after=query.after,
            numbers=query.numbers,
            with_content=query.with_content,
        )
    wanted = sorted(set(query.numbers))
    if query.require_all and wanted and [p["number"] for p in found] != wanted:
        return [_pseudo(row["id"], UNAVAILABLE)]
    return found


async def viewer_log(pool: asyncpg.Pool, archive: ArchiveStore, job_id: int) -> ViewerLog:
    """Where the viewer starts: a job without a log yet is simply one with no parts."""
    async with queries.snapshot(pool) as conn:
        row = await queries.log_row(conn, "job_id", job_id)
        if row is None:
            return ViewerLog(job_id)
        live = row["aggregated_at"] is None and row["purged_at"] is None
        found = await queries.parts(conn, row["id"]) if live else []
        late = not live and queries.is_hot(row)  # purged, with parts arrived since
        hot = await queries.hot_content(conn, row["id"]) if late else None
    view = ViewerLog(job_id, complete=not live, parts=found, removed_by=row["removed_by"])
    view.removed_at = row["removed_at"].isoformat() if row["removed_at"] else None
    if live:
        view.content = row["content"] or ""
    else:
        view.content = await _content(archive, row, hot) or ""
    return view
