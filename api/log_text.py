"""A log's text as bytes, wherever it lives, read whole or by range.

While the log is live or aggregated its text is in the database (the content column and
the parts it does not hold yet, merged as `api.reading` merges them for GET /logs); once
purged it is the S3 archive, and a slice of it is one HTTP Range request on the object.
A purged log with parts stored since (late parts waiting for their merge) is merged whole,
as GET /logs serves it: such a log is rare and short-lived.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import asyncpg

from api import queries
from api.errors import ApiError
from api.reading import content_of, pending_of
from travis_logs.archive_store import ArchiveStore
from travis_logs.byte_range import LineRange, line_slice
from travis_logs.log_index import line_span

MISSING = "the log is purged but its archive is missing"


@dataclass(frozen=True)
class LogText:
    """A log's bytes: `body` in hand, or (None) in the archive as `size` bytes."""

    job_id: int
    log_id: int
    size: int
    body: bytes | None
    archive: ArchiveStore

    async def read(self, start: int, end: int) -> bytes:
        """Bytes `start`..`end` inclusive (within the log)."""
        if self.body is not None:
            return self.body[start : end + 1]
        got = await self.archive.fetch_range(self.job_id, start, end)
        if got is None:
            raise ApiError(404, MISSING)
        return got

    async def lines(self, lines: LineRange) -> bytes:
        """Lines `lines` of the log; from an archive, only the bytes between the indexed line
        starts around them (or the whole object when it has no index of this text)."""
        if self.body is None:
            raw = await self.archive.fetch_index(self.job_id)
            index = json.loads(raw) if raw is not None else None
            if index is not None and index.get("size") == self.size and self.size:
                line, start, end = line_span(index, lines.first, lines.last)
                return line_slice(await self.read(start, end), lines, first_line=line)
        return line_slice(await self.whole(), lines)

    async def whole(self) -> bytes:
        if self.body is not None:
            return self.body
        got = await self.archive.fetch(self.job_id)
        if got is None:
            raise ApiError(404, MISSING)
        return got


async def log_text(pool: asyncpg.Pool, archive: ArchiveStore, job_id: int) -> LogText | None:
    """The job's log as GET /logs serves it; None when the job has no log."""
    async with queries.snapshot(pool) as conn:
        row = await queries.log_row(conn, "job_id", job_id)
        if row is None:
            return None
        pending = await pending_of(conn, row["id"])
    if row["content"] is None and row["purged_at"] is not None and not pending.parts:
        head = await archive.head(job_id)
        if head is None:
            raise ApiError(404, MISSING)
        return LogText(job_id, row["id"], head.size, None, archive)
    body = (await content_of(archive, row, pending) or "").encode()
    return LogText(job_id, row["id"], len(body), body, archive)
