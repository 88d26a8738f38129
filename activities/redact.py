"""Applying a redaction: mask literal strings and byte ranges in one log, in one transaction.

The log is taken as a read shows it: its content (or, once purged, its verified archive)
with the stored parts it does not hold yet spliced in by number. The strings are found in
that concatenation, so across part boundaries too. Masks keep the byte length
(travis_logs/redaction.py), so the part index still fits. When anything changed, the merged,
masked log becomes the content (a new version: the workflow archives and verifies it) and
every stored part is masked too; when nothing changed nothing is written, so redacting twice
makes no new version and no new archive.

The request is a `log_redactions` row (claim check); its strings are inactive rows of
`log_redaction_rules` until applied here, then active: the ingest and the aggregation mask
later parts with them. A refused request (a range off a character boundary) records why and
drops its strings, and the update fails with that reason.
"""

from __future__ import annotations

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from activities.models import REDACT_LOG, RedactLogInput, RedactLogResult
from travis_logs.archive_store import ArchiveStore
from travis_logs.log_limit import CUT_COLUMNS, cut_of, finish
from travis_logs.logrow import TEXT_COLUMNS, RowText
from travis_logs.merge import Merged, PartIndex, merge_unheld
from travis_logs.redaction import RangeError, mask
from travis_logs.transfer import Progress

_REQUEST = """
SELECT id, job_id, requested_by, reason, string_sha256, range_starts, range_ends, occurrences,
       content_version, error, (extract(epoch FROM applied_at) * 1000)::bigint AS applied_ms
FROM log_redactions WHERE id = $1 AND job_id = $2 FOR UPDATE
"""
_LOCKED_ROW = f"""
SELECT id, content, content_version, part_numbers, part_sizes,
       {TEXT_COLUMNS}, archive_size, archive_sha256, {CUT_COLUMNS}
FROM logs WHERE job_id = $1 FOR NO KEY UPDATE
"""
_PARTS = "SELECT number, content FROM log_parts WHERE log_id = $1"
_SECRETS = """
SELECT DISTINCT secret FROM log_redaction_rules
WHERE job_id = $1 AND (active OR redaction_id = $2)
"""
# A string already active for the job stays one rule: the ingest masks with each once.
_DROP_KNOWN = """
DELETE FROM log_redaction_rules r
WHERE r.redaction_id = $2 AND NOT r.active AND EXISTS (
    SELECT 1 FROM log_redaction_rules a WHERE a.job_id = $1 AND a.active AND a.secret = r.secret)
"""
_ACTIVATE = "UPDATE log_redaction_rules SET active = true WHERE redaction_id = $1"
_DROP_REQUEST_RULES = "DELETE FROM log_redaction_rules WHERE redaction_id = $1 AND NOT active"
_WRITE = """
UPDATE logs SET content = $2, part_numbers = $3, part_sizes = $4,
       content_version = content_version + 1, aggregated_at = now(), updated_at = now(),
       archived_at = NULL, archive_verified = NULL, purged_at = NULL
WHERE id = $1 RETURNING content_version
"""
_MASK_PARTS = """
UPDATE log_parts p SET content = m.content
FROM unnest($2::integer[], $3::text[]) AS m(number, content)
WHERE p.log_id = $1 AND p.number = m.number
"""
_RECORD = """
UPDATE log_redactions SET applied_at = now(), occurrences = $2, content_version = $3
WHERE id = $1 RETURNING (extract(epoch FROM applied_at) * 1000)::bigint
"""
# Requests whose update never ran (the API died in between): their strings never became
# rules; after far longer than any retry they are closed as refused.
_SWEEP = """
WITH stale AS (
    UPDATE log_redactions SET error = 'never applied', applied_at = now()
    WHERE applied_at IS NULL AND requested_at < now() - interval '7 days' RETURNING id)
DELETE FROM log_redaction_rules WHERE NOT active AND redaction_id IN (SELECT id FROM stale)
"""
_REFUSE = "UPDATE log_redactions SET error = $2, applied_at = now() WHERE id = $1"


class RedactActivities:
    """redact_log over the injected pool and archive store."""

    def __init__(self, pool: asyncpg.Pool, store: ArchiveStore) -> None:
        self._pool = pool
        self._store = store

    @activity.defn(name=REDACT_LOG.name)
    async def redact_log(self, inp: RedactLogInput) -> RedactLogResult:
        """Mask the request's strings and ranges in the log; a repeated call is a no-op."""
        try:
            return await self._redact(inp)
        except RangeError as err:
            await self._refuse(inp, str(err))
            raise ApplicationError(str(err), type="RedactionRefused", non_retryable=True) from None

    async def _redact(self, inp: RedactLogInput) -> RedactLogResult:
        async with self._pool.acquire() as conn, conn.transaction():
            req = await _request(conn, inp)
            row = await conn.fetchrow(_LOCKED_ROW, inp.job_id)
            if row is None:
                raise RangeError(f"job {inp.job_id} has no log")
            if req["applied_ms"] is not None:  # a retry after the commit
                return _result(row["id"], req, req["content_version"] or row["content_version"])
            if not RowText.of(row).purged:
                return await _apply(conn, req, row, (row["content"] or "").encode())
        # Purged: read the archive without holding the lock, then apply under it again.
        progress = Progress()
        fetch = self._store.fetch_recorded(
            inp.job_id, row["archive_size"], row["archive_sha256"], progress
        )
        base = await heartbeating(fetch, progress)
        async with self._pool.acquire() as conn, conn.transaction():
            req = await _request(conn, inp)
            locked = await conn.fetchrow(_LOCKED_ROW, inp.job_id)
            if locked["content_version"] != row["content_version"] or req["applied_ms"]:
                raise ApplicationError("the log changed during redaction", type="LogChanged")
            return await _apply(conn, req, locked, base)

    async def _refuse(self, inp: RedactLogInput, error: str) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_DROP_REQUEST_RULES, inp.redaction_id)
            await conn.execute(_REFUSE, inp.redaction_id, error)


async def _request(conn: asyncpg.Connection, inp: RedactLogInput) -> asyncpg.Record:
    req = await conn.fetchrow(_REQUEST, inp.redaction_id, inp.job_id)
    if req is None:
        raise ApplicationError(
            f"redaction {inp.redaction_id} of job {inp.job_id} does not exist",
            type="RedactionMissing",
            non_retryable=True,
        )
    if req["error"]:
        raise ApplicationError(req["error"], type="RedactionRefused", non_retryable=True)
    return req


async def _apply(
    conn: asyncpg.Connection, req: asyncpg.Record, row: asyncpg.Record, base: bytes
) -> RedactLogResult:
    """Under the row lock: mask the merged log; write it and the parts when it changed."""
    parts = await conn.fetch(_PARTS, row["id"])
    stored = {r["number"]: (r["content"] or "").encode() for r in parts}
    index = PartIndex(tuple(row["part_numbers"]), tuple(row["part_sizes"]))
    merged = merge_unheld(base, index, sorted(stored.items()))
    cut = cut_of(row)
    if cut is not None:  # as the aggregation leaves a log past the size limit
        merged = finish(merged, cut)
    secrets = [r["secret"] for r in await conn.fetch(_SECRETS, req["job_id"], req["id"])]
    ranges = list(zip(req["range_starts"], req["range_ends"], strict=True))
    masked = mask(merged.body, secrets, ranges)
    await conn.execute(_DROP_KNOWN, req["job_id"], req["id"])
    await conn.execute(_ACTIVATE, req["id"])
    version, written = row["content_version"], None
    if masked.changed(merged.body):
        numbers, sizes = list(merged.index.numbers), list(merged.index.sizes)
        version = await conn.fetchval(_WRITE, row["id"], masked.body.decode(), numbers, sizes)
        written = version
        await _mask_parts(conn, row["id"], stored, merged, masked.body, secrets)
    count = masked.occurrences + masked.ranges_changed
    applied_ms = await conn.fetchval(_RECORD, req["id"], count, written)
    await conn.execute(_SWEEP)
    return RedactLogResult(
        log_id=row["id"],
        content_version=version,
        changed=written is not None,
        occurrences=count,
        string_sha256=list(req["string_sha256"]),
        requested_by=req["requested_by"],
        reason=req["reason"],
        applied_at_ms=applied_ms,
    )


async def apply_rules(
    conn: asyncpg.Connection,
    log_id: int,
    merged: Merged,
    parts: dict[int, bytes],
    secrets: list[str],
) -> Merged:
    """The aggregation's rule: the merged log with the job's active strings masked, and the
    merged `parts` masked to match (their rows are updated); unchanged without rules."""
    if not secrets:
        return merged
    masked = mask(merged.body, secrets)
    if not masked.changed(merged.body):
        return merged
    await _mask_parts(conn, log_id, parts, merged, masked.body, secrets)
    return Merged(masked.body, merged.index)


async def _mask_parts(
    conn: asyncpg.Connection,
    log_id: int,
    stored: dict[int, bytes],
    merged: Merged,
    masked: bytes,
    secrets: list[str],
) -> None:
    """Give every stored part its bytes of the masked log (a stored copy that differs from
    what the log holds, e.g. one re-sent after purge, is masked on its own)."""
    at = len(masked) - merged.index.indexed_bytes
    spans: dict[int, tuple[int, int]] = {}
    for number, size in zip(merged.index.numbers, merged.index.sizes, strict=True):
        spans[number], at = (at, at + size), at + size
    changes: dict[int, str] = {}
    for number, body in stored.items():
        span = spans.get(number)
        if span is not None and merged.body[span[0] : span[1]] == body:
            piece = masked[span[0] : span[1]]
        else:
            piece = mask(body, secrets).body
        if piece != body:
            changes[number] = piece.decode()
    if changes:
        await conn.execute(_MASK_PARTS, log_id, list(changes), list(changes.values()))


def _result(log_id: int, req: asyncpg.Record, version: int) -> RedactLogResult:
    return RedactLogResult(
        log_id=log_id,
        content_version=version,
        changed=req["content_version"] is not None,
        occurrences=req["occurrences"] or 0,
        string_sha256=list(req["string_sha256"]),
        requested_by=req["requested_by"],
        reason=req["reason"],
        applied_at_ms=req["applied_ms"],
    )
