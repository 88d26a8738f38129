"""The claim check of a redaction: the request goes to PostgreSQL, the update names its row.

The literal strings are stored as inactive `log_redaction_rules` rows and the audit row
(`log_redactions`) keeps only their SHA-256; the `redact` update carries the audit row's id.
Shared by `POST /logs/:job_id/redactions` and `travis-logs redact`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from travis_logs.redaction import REDACTIONS_CHANNEL, sha256_of
from travis_logs.settings import Settings
from workflows.client import redact
from workflows.models import RedactInput, RedactResult

_LOG_EXISTS = "SELECT 1 FROM logs WHERE job_id = $1"
_STORE = """
INSERT INTO log_redactions (job_id, requested_by, reason, string_sha256, range_starts, range_ends)
VALUES ($1, $2, $3, $4, $5, $6) RETURNING id
"""
_STORE_STRINGS = """
INSERT INTO log_redaction_rules (job_id, redaction_id, secret)
SELECT $1, $2, s FROM unnest($3::text[]) AS s
"""
_ACTIVE = """
SELECT DISTINCT r.secret FROM log_redaction_rules r JOIN logs l ON l.job_id = r.job_id
WHERE l.id = $1 AND r.active
"""
_NOTIFY = "SELECT pg_notify($1, $2)"
_AUDIT = """
SELECT id, requested_by, reason, requested_at, applied_at, occurrences, string_sha256,
       range_starts, range_ends, content_version
FROM log_redactions WHERE job_id = $1 AND applied_at IS NOT NULL AND error IS NULL ORDER BY id
"""


@dataclass(frozen=True)
class RedactionRequest:
    """What an operator asks: literal strings and [start, end) byte ranges to mask, and why."""

    job_id: int
    requested_by: str
    reason: str
    strings: list[str] = field(default_factory=list)
    ranges: list[tuple[int, int]] = field(default_factory=list)


class NoLog(Exception):
    """The job has no log to redact."""


class Refused(Exception):
    """The redaction cannot be applied as asked (e.g. a range cuts a UTF-8 character)."""


def invalid(strings: list[str], ranges: list[tuple[int, int]]) -> str:
    """Why a request cannot be taken as given (empty when it can); never echoes a string."""
    if not strings and not ranges:
        return "give at least one of strings or ranges"
    for i, s in enumerate(strings):
        if "\x00" in s or not s.strip():
            return f"strings.{i}: must hold visible text and no NUL (a log holds neither)"
        try:
            s.encode()
        except UnicodeEncodeError:
            return f"strings.{i}: not valid Unicode text"
    for i, (start, end) in enumerate(ranges):
        if start >= end:
            return f"ranges.{i}: start must be below end"
    return ""


async def stage(pool: asyncpg.Pool, req: RedactionRequest) -> RedactInput:
    """Store the request (audit row and its strings, inactive) in one transaction."""
    strings = list(dict.fromkeys(req.strings))
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(_LOG_EXISTS, req.job_id) is None:
            raise NoLog(f"job {req.job_id} has no log")
        redaction_id: int = await conn.fetchval(
            _STORE,
            req.job_id,
            req.requested_by,
            req.reason,
            [sha256_of(s) for s in strings],
            [start for start, _ in req.ranges],
            [end for _, end in req.ranges],
        )
        await conn.execute(_STORE_STRINGS, req.job_id, redaction_id, strings)
        # At commit: every ingest process holds back this job's live pushes from now on.
        await conn.execute(_NOTIFY, REDACTIONS_CHANNEL, str(req.job_id))
    return RedactInput(redaction_id)


async def apply(
    pool: asyncpg.Pool, temporal: Client, settings: Settings, req: RedactionRequest
) -> RedactResult:
    """Stage the request and run the `redact` update; Refused when the activity refused it."""
    inp = await stage(pool, req)
    try:
        return await redact(temporal, settings, req.job_id, inp)
    except WorkflowUpdateFailedError as err:
        reason = _refusal(err)
        if reason is None:
            raise
        raise Refused(reason) from None


def _refusal(err: BaseException) -> str | None:
    """The reason of a RedactionRefused failure anywhere in the cause chain."""
    cause: BaseException | None = err
    while cause is not None:
        if isinstance(cause, ApplicationError) and cause.type == "RedactionRefused":
            return cause.message
        cause = cause.__cause__ or getattr(cause, "cause", None)
    return None


async def audit(pool: asyncpg.Pool | asyncpg.Connection, job_id: int) -> list[dict[str, Any]]:
    """The job's applied redactions as `GET /logs/:id` shows them (no secret in them)."""
    rows = await pool.fetch(_AUDIT, job_id)
    return [
        {
            "id": r["id"],
            "requested_by": r["requested_by"],
            "reason": r["reason"],
            "requested_at": r["requested_at"],
            "applied_at": r["applied_at"],
            "occurrences": r["occurrences"],
            "string_sha256": list(r["string_sha256"]),
            "ranges": [list(p) for p in zip(r["range_starts"], r["range_ends"], strict=True)],
            "content_version": r["content_version"],
        }
        for r in rows
    ]


def last_masked_at(audit: list[dict[str, Any]]) -> datetime | None:
    """The timeline's `redacted`: when the last redaction that masked something was applied."""
    return max((r["applied_at"] for r in audit if r["content_version"] is not None), default=None)


async def active_secrets(conn: asyncpg.Connection, log_id: int) -> list[str]:
    """The redaction strings in force for a log (to mask a read that merges stored parts)."""
    return [r["secret"] for r in await conn.fetch(_ACTIVE, log_id)]
