"""Reading a log's state and merging its stored parts into its content, in number order.

Aggregation is set-exact: the statement that locks the log's row reads which parts are
stored; the merge takes exactly those that the content does not hold yet, and records them
in the part index. A part committed meanwhile is not in the index, so purge (which deletes
only indexed numbers) leaves it for the next aggregation. Parts stay stored until purge.

The merge is planned from sizes and numbers and executed by PostgreSQL in one UPDATE
(activities.merge_in_db), so the log's text does not enter the worker; a log with active
redaction rules and a purged log are merged here, in Python (see `_merge`).

When the log was purged, the merge starts from the archive, checked against the size and
SHA-256 recorded when it was verified, so a late part is spliced into the full log and never
replaces it. Repeating the activity merges nothing twice: it is idempotent.

The result also says which part numbers the log still misses (travis_logs.completeness),
from the part index and final number on the row, which outlive purge.
"""

from __future__ import annotations

import json

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from activities.merge_in_db import execute
from activities.models import (
    AGGREGATE_LOG,
    INSPECT_LOG,
    AggregateInput,
    AggregateResult,
    InspectInput,
    LogSnapshot,
    RedactionRecord,
)
from activities.redact import apply_rules
from travis_logs.archive_store import ArchiveStore
from travis_logs.completeness import missing_ranges
from travis_logs.log_limit import CUT_COLUMNS, cut_of, finish, without_middle
from travis_logs.logrow import TEXT_COLUMNS, RowText
from travis_logs.merge import PartIndex, merge_unheld
from travis_logs.merge_plan import plan
from travis_logs.transfer import Progress

_SNAPSHOT = f"""
SELECT l.id, l.final_number, l.content_version, {TEXT_COLUMNS},
       CASE WHEN l.archive_verified THEN l.archive_version END AS verified_version,
       (SELECT (extract(epoch FROM now() - max(p.created_at)) * 1000)::bigint
          FROM log_parts p WHERE p.log_id = l.id) AS newest_age_ms,
       (SELECT count(*) FROM (SELECT number FROM log_parts WHERE log_id = l.id
                              EXCEPT SELECT unnest(l.part_numbers)) AS pending) AS pending,
       (SELECT coalesce(json_agg(r ORDER BY r.redaction_id), '[]') FROM (
            SELECT id AS redaction_id, requested_by, reason, occurrences, string_sha256,
                   content_version,
                   (extract(epoch FROM applied_at) * 1000)::bigint AS applied_at_ms
            FROM log_redactions WHERE job_id = $1 AND applied_at IS NOT NULL AND error IS NULL
            ORDER BY id DESC LIMIT 20) r) AS redactions
FROM logs l WHERE l.job_id = $1
"""
# With the stored parts' numbers and byte sizes (octet_length of a stored text is read from
# its header: no part's text is read here), in the statement's snapshot: a part committed
# while the lock waited is not among them, like one committed after it, and stays stored
# for the next round (a part after the final one is signalled; ingest/transitions.py).
_LOCKED_ROW = f"""
SELECT id, octet_length(content) AS content_bytes, content_version, part_numbers,
       part_sizes, final_number, {TEXT_COLUMNS}, removed_by IS NOT NULL AS removed,
       archive_size, archive_sha256, {CUT_COLUMNS},
       CASE WHEN archive_verified THEN archive_version END AS verified_version,
       ARRAY(SELECT r.secret FROM log_redaction_rules r
             WHERE r.job_id = logs.job_id AND r.active) AS secrets,
       stored.numbers AS stored_numbers, stored.sizes AS stored_sizes
FROM logs, LATERAL (
    SELECT coalesce(array_agg(p.number ORDER BY p.number), '{{}}') AS numbers,
           coalesce(array_agg(coalesce(octet_length(p.content), 0) ORDER BY p.number), '{{}}')
               AS sizes
    FROM log_parts p WHERE p.log_id = logs.id) AS stored
WHERE job_id = $1 FOR NO KEY UPDATE OF logs
"""
_CONTENT = "SELECT content FROM logs WHERE id = $1"
_PART_CONTENT = """
SELECT number, content FROM log_parts WHERE log_id = $1 AND number = ANY($2::integer[])
"""
# The content is no longer what the archive holds: archived_at and archive_verified say so
# (travis-api reads them), while archive_* keep describing the object in S3.
_WRITE = """
UPDATE logs SET content = $2, part_numbers = $3, part_sizes = $4,
       content_version = content_version + 1, aggregated_at = now(), updated_at = now(),
       archived_at = NULL, archive_verified = NULL, verified_at = NULL, purged_at = NULL
WHERE id = $1 RETURNING content_version
"""


class AggregateActivities:
    """inspect_log and aggregate_log (local activities, unless the merge reads the archive)."""

    def __init__(self, pool: asyncpg.Pool, store: ArchiveStore) -> None:
        self._pool = pool
        self._store = store

    @activity.defn(name=INSPECT_LOG.name)
    async def inspect_log(self, inp: InspectInput) -> LogSnapshot:
        """The log's final number, newest part age (database clock) and archive state."""
        row = await self._pool.fetchrow(_SNAPSHOT, inp.job_id)
        if row is None:
            return LogSnapshot(log_id=None)
        return LogSnapshot(
            log_id=row["id"],
            final_number=row["final_number"],
            newest_part_age_ms=row["newest_age_ms"],
            pending_parts=row["pending"],
            content_version=row["content_version"],
            verified_version=row["verified_version"],
            purged=RowText.of(row).purged,
            redactions=[RedactionRecord(**r) for r in json.loads(row["redactions"])],
        )

    @activity.defn(name=AGGREGATE_LOG.name)
    async def aggregate_log(self, inp: AggregateInput) -> AggregateResult:
        """Merge the stored parts the log does not hold yet into its content, by number."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(_LOCKED_ROW, inp.job_id)
            if row is None:
                return AggregateResult(log_id=None)
            fresh, duplicates = _new_numbers(row)
            if not fresh:
                return _unchanged(row, duplicates)
            if not RowText.of(row).purged:
                return await _merge(conn, row, base=None)
        # Purged: read the archive without holding the lock, then merge under it again.
        progress = Progress()
        fetch = self._store.fetch_recorded(
            inp.job_id, row["archive_size"], row["archive_sha256"], progress
        )
        base = await heartbeating(fetch, progress)
        async with self._pool.acquire() as conn, conn.transaction():
            locked = await conn.fetchrow(_LOCKED_ROW, inp.job_id)
            if locked["content_version"] != row["content_version"]:
                # Replaced while the archive was read: start over from the new state.
                raise ApplicationError("the log changed during aggregation", type="LogChanged")
            return await _merge(conn, locked, base)


def _new_numbers(row: asyncpg.Record) -> tuple[list[int], int]:
    """Stored part numbers the log does not hold yet, and how many it holds already."""
    fresh, duplicates = _fresh_parts(row)
    return [n for n, _ in fresh], duplicates


def _fresh_parts(row: asyncpg.Record) -> tuple[list[tuple[int, int]], int]:
    """(number, byte size) of the stored parts the log does not hold yet, in number order,
    and how many it holds already (the locked row's `stored_numbers` and `stored_sizes`)."""
    stored = list(zip(row["stored_numbers"], row["stored_sizes"], strict=True))
    held = set(row["part_numbers"])
    fresh = sorted((n, size) for n, size in stored if n not in held)
    return fresh, len(stored) - len(fresh)


def _unchanged(row: asyncpg.Record, duplicates: int) -> AggregateResult:
    size = row["content_bytes"] if row["has_text"] else row["archive_size"]
    cut = cut_of(row)
    return AggregateResult(
        log_id=row["id"],
        content_version=row["content_version"],
        has_content=RowText.of(row).has_content,
        removed=row["removed"],
        size=size or 0,
        parts=len(row["part_numbers"]),
        duplicates=duplicates,
        verified_version=row["verified_version"],
        missing=without_middle(missing_ranges(row["part_numbers"], row["final_number"]), cut),
        elided_bytes=cut.elided_bytes if cut else 0,
        elided_parts=cut.elided_parts if cut else 0,
    )


async def _merge(
    conn: asyncpg.Connection, row: asyncpg.Record, base: bytes | None
) -> AggregateResult:
    """Under the row lock: merge exactly the parts stored now, write content and index."""
    if base is None and not row["secrets"]:
        return await _merge_in_db(conn, row)
    # Here the text passes through the worker. A purged log's base is the archive, read from
    # S3 by the worker. Active redaction rules mask the merged text (a secret split across
    # late parts is whole only there) and the parts to match: `mask` and its spans are
    # Python. The rules could move to SQL too (replace() over the concatenation, the parts'
    # spans from the index), but masking must stay byte-identical to `mask`: not done yet.
    fresh, duplicates = _new_numbers(row)
    parts = await conn.fetch(_PART_CONTENT, row["id"], fresh)
    if base is None:
        base = ((await conn.fetchval(_CONTENT, row["id"])) or "").encode()
    index = PartIndex(tuple(row["part_numbers"]), tuple(row["part_sizes"]))
    fresh_parts = [(p["number"], (p["content"] or "").encode()) for p in parts]
    merged = merge_unheld(base, index, fresh_parts)
    cut = cut_of(row)
    if cut is not None:  # past the size limit: head, marker, tail
        merged = finish(merged, cut)
    # A secret split across late parts is whole only here: mask it in the log and its parts.
    merged = await apply_rules(conn, row["id"], merged, dict(fresh_parts), row["secrets"])
    # Every piece is whole UTF-8 (parts are cut at part boundaries), so this cannot fail.
    text = merged.body.decode()
    version = await conn.fetchval(
        _WRITE, row["id"], text, list(merged.index.numbers), list(merged.index.sizes)
    )
    return _merged(row, version, len(merged.body), merged.index, len(parts), duplicates)


async def _merge_in_db(conn: asyncpg.Connection, row: asyncpg.Record) -> AggregateResult:
    """The merge planned from sizes and numbers and executed by PostgreSQL: the log's text
    never enters the worker (travis_logs.merge_plan, activities.merge_in_db)."""
    fresh, duplicates = _fresh_parts(row)
    index = PartIndex(tuple(row["part_numbers"]), tuple(row["part_sizes"]))
    planned = plan(row["content_bytes"] or 0, index, fresh, cut_of(row))
    written = await execute(conn, row["id"], planned)
    return _merged(
        row, written.content_version, written.size, written.index, len(fresh), duplicates
    )


def _merged(
    row: asyncpg.Record,
    version: int,
    size: int,
    index: PartIndex,
    merged: int,
    duplicates: int,
) -> AggregateResult:
    cut = cut_of(row)
    return AggregateResult(
        log_id=row["id"],
        content_version=version,
        has_content=True,
        removed=row["removed"],
        size=size,
        parts=len(index.numbers),
        merged=merged,
        duplicates=duplicates,
        from_archive=RowText.of(row).purged,
        verified_version=row["verified_version"],
        missing=without_middle(missing_ranges(index.numbers, row["final_number"]), cut),
        elided_bytes=cut.elided_bytes if cut else 0,
        elided_parts=cut.elided_parts if cut else 0,
    )
