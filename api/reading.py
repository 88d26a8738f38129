"""travis-logs' FetchLog and FetchLogParts, plus what the viewer page starts from.

A log's content is wherever it lives now: the parts while the log is hot, the `content`
column once aggregated, the S3 archive once purged. Parts stored after aggregation (late,
or re-sent) wait there for the quiet period and the merge; a read serves the log as that
merge will leave it, by the same rule (`travis_logs.merge.merge_unheld`): the stored parts
whose numbers the content does not hold, spliced in by number. Nothing is written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from api import queries
from api.redactions import active_secrets
from travis_logs.archive_store import ArchiveStore
from travis_logs.completeness import gap_offsets, is_complete, missing_ranges
from travis_logs.log_limit import Cut, cut_of, finish, without_middle
from travis_logs.logrow import RowText
from travis_logs.merge import PartIndex, merge_unheld
from travis_logs.parts import clean
from travis_logs.redaction import mask

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


@dataclass(frozen=True)
class Pending:
    """What a read merges: the content's part index and the stored parts it does not hold,
    and the job's redaction strings (read only when there are such parts: a secret split
    across two of them is whole only in the merge, as the aggregation will mask it)."""

    index: PartIndex
    parts: list[tuple[int, bytes]]
    secrets: list[str] = field(default_factory=list)


async def pending_of(conn: asyncpg.Connection, log_id: int) -> Pending:
    numbers, sizes = await queries.part_index(conn, log_id)
    parts = await queries.unheld_parts(conn, log_id)
    secrets = await active_secrets(conn, log_id) if parts else []
    return Pending(PartIndex(tuple(numbers), tuple(sizes)), parts, secrets)


@dataclass
class ViewerLog:
    """A log as the viewer page starts from: finished text, or the parts so far."""

    job_id: int
    complete: bool = False
    content: str = ""
    parts: list[dict[str, Any]] = field(default_factory=list)
    removed_at: str | None = None
    removed_by: int | None = None
    # Missing part numbers ([first, last] ranges), and where each sits in `content` (in
    # UTF-16 code units, as the page's script indexes strings): the page marks them.
    missing_parts: list[list[int]] = field(default_factory=list)
    gaps: list[int] = field(default_factory=list)
    timeline: dict[str, str | None] = field(default_factory=dict)
    # A log too large to carry (over VIEWER_INLINE_BYTES): no `content` nor `parts`; the page
    # reads GET /logs/:id/index and byte ranges of GET /logs/:id/text, `size` bytes in all
    # (the parts so far when `complete` is false: the page then follows the later ones).
    ranged: bool = False
    size: int = 0


async def _base(archive: ArchiveStore, row: asyncpg.Record) -> bytes | None:
    """The log before its pending parts: its content, else its archive once purged."""
    text = RowText.of(row)
    if text.has_text:
        return str(row["content"]).encode()
    if not text.purged:
        return None
    raw = await archive.fetch(row["job_id"])
    if raw is None:
        log.warning("job %d: the log is purged but its archive is missing", row["job_id"])
    return raw


def _merged(job_id: int, base: bytes, pending: Pending, cut: Cut | None) -> bytes:
    try:
        merged = merge_unheld(base, pending.index, pending.parts)
        body = (merged if cut is None else finish(merged, cut)).body
    except ValueError as err:  # the index does not fit the base (an archive gone missing)
        log.warning("job %d: %s; pending parts follow the log", job_id, err)
        body = base + b"".join(body for _, body in pending.parts)
    return mask(body, pending.secrets).body if pending.secrets else body


def completeness(lifecycle: asyncpg.Record) -> tuple[bool, list[list[int]]]:
    """Whether the log (content, archive and stored parts together) is complete, and the
    part numbers it misses (the middle of a log past the size limit is left out, not
    missing)."""
    numbers = sorted(set(lifecycle["part_numbers"]) | set(lifecycle["stored_numbers"]))
    missing = without_middle(missing_ranges(numbers, lifecycle["final_number"]), cut_of(lifecycle))
    return is_complete(numbers, lifecycle["final_number"], missing), missing


TIMELINE = {
    "first_part": "first_part_at",
    "final_part": "final_part_at",
    "aggregated": "aggregated_at",
    "archived": "archived_at",
    "verified": "verified_at",
    "purged": "purged_at",
    "replaced": "replaced_at",
}


def timeline(lifecycle: asyncpg.Record) -> dict[str, datetime | None]:
    return {name: lifecycle[column] for name, column in TIMELINE.items()}


def gap_positions(
    text: str, lifecycle: asyncpg.Record, pending: Pending, missing: list[list[int]]
) -> list[int]:
    """Where each missing range sits in `text`, in UTF-16 code units (the page's indexes)."""
    held = dict(zip(lifecycle["part_numbers"], lifecycle["part_sizes"], strict=True))
    sizes = held | {n: len(body) for n, body in pending.parts if n not in held}
    encoded = text.encode()
    head = max(0, len(encoded) - sum(sizes.values()))
    offsets = gap_offsets(head, list(sizes), list(sizes.values()), missing)
    return [len(encoded[:o].decode(errors="ignore").encode("utf-16-le")) // 2 for o in offsets]


async def read_log(
    pool: asyncpg.Pool, archive: ArchiveStore, key: queries.LogKey, value: int
) -> dict[str, Any] | None:
    """The row with `removed_by_id` and its current content; None when there is no row."""
    async with queries.snapshot(pool) as conn:
        row = await queries.log_row(conn, key, value)
        if row is None:
            return None
        pending = await pending_of(conn, row["id"])
        lifecycle = await queries.lifecycle(conn, row["id"])
    result = dict(row)
    result["removed_by_id"] = result.pop("removed_by")
    result["content"] = await content_of(archive, row, pending)
    result["complete"], result["missing_parts"] = completeness(lifecycle)
    result["timeline"] = timeline(lifecycle)
    result["truncated"] = truncated(row)
    return result


def truncated(row: asyncpg.Record) -> dict[str, int] | None:
    """What a log past the size limit left out (the marker line's counts); None: whole."""
    cut = cut_of(row)
    if cut is None:
        return None
    return {"elided_bytes": cut.elided_bytes, "elided_parts": cut.elided_parts}


async def content_of(archive: ArchiveStore, row: asyncpg.Record, pending: Pending) -> str | None:
    """The log as the next aggregation will leave it; None when there is none."""
    base = await _base(archive, row)
    if not pending.parts:
        return None if base is None else clean(base)
    text = clean(_merged(row["job_id"], base or b"", pending, cut_of(row)))
    if base is None and not text.strip():
        return None  # FetchLog: parts that are all blank are no log
    return text


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


async def viewer_log(
    pool: asyncpg.Pool, archive: ArchiveStore, job_id: int, inline_bytes: int
) -> ViewerLog:
    """Where the viewer starts: a job without a log yet is simply one with no parts; a log
    over `inline_bytes`, finished or still streaming, is read by range (`ViewerLog.ranged`)."""
    async with queries.snapshot(pool) as conn:
        row = await queries.log_row(conn, "job_id", job_id)
        if row is None:
            return ViewerLog(job_id)
        live = RowText.of(row).live
        streamed = await queries.stored_bytes(conn, row["id"]) if live else 0
        # A streaming log too large to carry is read by range too: its parts stay unread here.
        found = await queries.parts(conn, row["id"]) if live and streamed <= inline_bytes else []
        pending = Pending(PartIndex(), []) if live else await pending_of(conn, row["id"])
        lifecycle = await queries.lifecycle(conn, row["id"])
    view = ViewerLog(job_id, complete=not live, parts=found, removed_by=row["removed_by"])
    view.removed_at = row["removed_at"].isoformat() if row["removed_at"] else None
    view.timeline = {k: v.isoformat() if v else None for k, v in timeline(lifecycle).items()}
    if live:
        view.content = row["content"] or ""
        if streamed > inline_bytes:  # the page opens at the end of the parts so far, follows
            view.ranged, view.size = True, streamed
        return view
    _, view.missing_parts = completeness(lifecycle)
    size = await _stored_size(archive, row) if not pending.parts else None
    if size is not None and size > inline_bytes:
        view.ranged, view.size = True, size
        return view
    view.content = await content_of(archive, row, pending) or ""
    view.gaps = gap_positions(view.content, lifecycle, pending, view.missing_parts)
    return view


async def _stored_size(archive: ArchiveStore, row: asyncpg.Record) -> int | None:
    """The byte size of a finished log's text without reading it from S3 (a HEAD); None
    when it has none. Pending parts are merged whole, as GET /logs/:id/text merges them."""
    text = RowText.of(row)
    if text.has_text:
        return len(str(row["content"]).encode())
    if not text.purged:
        return None
    head = await archive.head(row["job_id"])
    return None if head is None else head.size
