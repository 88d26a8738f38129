"""A log's text as bytes, wherever it lives, read whole or by range.

While the log is live or aggregated its text is in the database (the content column and
the parts it does not hold yet, merged as `api.reading` merges them for GET /logs); once
purged it is the S3 archive, and a slice of it is one HTTP Range request on the object.
A purged log with parts stored since (late parts waiting for their merge) is merged whole,
as GET /logs serves it: such a log is rare and short-lived. A streaming log (parts only, no
redaction in force, not cut) is its parts end to end: a slice of it reads only the parts
that hold the slice (`StreamedParts`), so the viewer's blocks of a large live log do not
each read the whole log.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from dataclasses import dataclass
from itertools import accumulate

import asyncpg

from api import queries
from api.errors import ApiError
from api.reading import content_of, pending_of
from api.redactions import active_secrets
from travis_logs.archive_store import ArchiveStore
from travis_logs.byte_range import LineRange, line_slice
from travis_logs.log_index import line_span
from travis_logs.log_limit import cut_of
from travis_logs.logrow import RowText

MISSING = "the log is purged but its archive is missing"
CHANGED = "the log's parts changed while it was read (aggregated, replaced or cut): read it again"


_ROW_INDEX = "SELECT archive_index FROM logs WHERE id = $1"
_PART_SIZES = (
    "SELECT number, octet_length(content) AS size FROM log_parts WHERE log_id = $1 ORDER BY number"
)
_PART_BODIES = (
    "SELECT number, content FROM log_parts WHERE log_id = $1 AND number = ANY($2) ORDER BY number"
)


@dataclass(frozen=True)
class StreamedParts:
    """A streaming log's stored parts as they stood when read: numbers and byte offsets."""

    pool: asyncpg.Pool
    log_id: int
    numbers: list[int]
    offsets: list[int]  # of each part, and the log's size last

    @classmethod
    async def of(cls, pool: asyncpg.Pool, conn: asyncpg.Connection, log_id: int) -> StreamedParts:
        rows = await conn.fetch(_PART_SIZES, log_id)
        offsets = list(accumulate((r["size"] for r in rows), initial=0))
        return cls(pool, log_id, [r["number"] for r in rows], offsets)

    async def read(self, start: int, end: int) -> bytes:
        """Bytes `start`..`end` inclusive, from the parts that hold them only (by number:
        a part stored since, even a late one in between, does not shift them)."""
        first = bisect_right(self.offsets, start) - 1
        last = bisect_right(self.offsets, end) - 1
        wanted = self.numbers[first : last + 1]
        rows = await self.pool.fetch(_PART_BODIES, self.log_id, wanted)
        if [r["number"] for r in rows] != wanted:  # dropped since: the offsets no longer hold
            raise ApiError(409, CHANGED)
        held = "".join(r["content"] or "" for r in rows).encode()
        skip = self.offsets[first]
        return held[start - skip : end + 1 - skip]


@dataclass(frozen=True)
class LogText:
    """A log's bytes: `body` in hand, or (None) in the archive or the stored `parts` of a
    streaming log, as `size` bytes."""

    job_id: int
    log_id: int
    size: int
    body: bytes | None
    archive: ArchiveStore
    parts: StreamedParts | None = None
    # Where an archived log's row is read for its index (`logs.archive_index`), when asked.
    pool: asyncpg.Pool | None = None

    async def read(self, start: int, end: int) -> bytes:
        """Bytes `start`..`end` inclusive (within the log)."""
        if self.body is not None:
            return self.body[start : end + 1]
        if self.parts is not None:
            return await self.parts.read(start, end)
        got = await self.archive.fetch_range(self.job_id, start, end)
        if got is None:
            raise ApiError(404, MISSING)
        return got

    async def lines(self, lines: LineRange) -> bytes:
        """Lines `lines` of the log; from an archive, only the bytes between the indexed line
        starts around them (or the whole object when it has no index of this text)."""
        if self.body is None and self.parts is None:
            raw = await self.archived_index()
            index = json.loads(raw) if raw is not None else None
            if index is not None and index.get("size") == self.size and self.size:
                line, start, end = line_span(index, lines.first, lines.last)
                return line_slice(await self.read(start, end), lines, first_line=line)
        return line_slice(await self.whole(), lines)

    async def archived_index(self) -> bytes | None:
        """The archive's index, as JSON: kept in the row when small, else beside it in S3."""
        if self.pool is not None:
            in_row: bytes | None = await self.pool.fetchval(_ROW_INDEX, self.log_id)
            if in_row is not None:
                return in_row
        return await self.archive.fetch_index(self.job_id)

    async def whole(self) -> bytes:
        if self.body is not None:
            return self.body
        if self.parts is not None:
            return await self.parts.read(0, self.size - 1) if self.size else b""
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
        if await _streamed(conn, row):
            parts = await StreamedParts.of(pool, conn, row["id"])
            return LogText(job_id, row["id"], parts.offsets[-1], None, archive, parts)
        pending = await pending_of(conn, row["id"])
    if row["content"] is None and row["purged_at"] is not None and not pending.parts:
        head = await archive.head(job_id)
        if head is None:
            raise ApiError(404, MISSING)
        return LogText(job_id, row["id"], head.size, None, archive, pool=pool)
    body = (await content_of(archive, row, pending) or "").encode()
    return LogText(job_id, row["id"], len(body), body, archive)


async def _streamed(conn: asyncpg.Connection, row: asyncpg.Record) -> bool:
    """Whether the log is its stored parts end to end, as `content_of` would merge them: no
    content yet, no cut (a marker goes in), no redaction in force (masking may span parts)."""
    text = RowText.of(row)
    if not text.live or text.has_text or cut_of(row) is not None:
        return False
    return not await active_secrets(conn, row["id"])
