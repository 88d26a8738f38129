"""The claim check of PUT /logs: new content goes to `log_uploads`, the update only names it.

A Temporal update's payload sits in the workflow's history for as long as the history is
kept, is shown by every UI that opens it, and is capped at 2 MiB. So the API stores the text
in PostgreSQL and the update carries the row's id and the text's SHA-256; the replace
activity checks both and moves the text into `logs.content`.
"""

from __future__ import annotations

import hashlib

import asyncpg

from workflows.models import ReplaceContentInput

_STORE = "INSERT INTO log_uploads (job_id, content, sha256) VALUES ($1, $2, $3) RETURNING id"


async def stage(
    conn: asyncpg.Pool | asyncpg.Connection, job_id: int, content: str, removed_by: int | None
) -> ReplaceContentInput:
    """The update for new `content` (stored first); empty content clears and stores nothing."""
    if not content:
        return ReplaceContentInput(upload_id=None, removed_by=removed_by)
    digest = hashlib.sha256(content.encode()).hexdigest()
    upload_id: int = await conn.fetchval(_STORE, job_id, content, digest)
    return ReplaceContentInput(upload_id=upload_id, sha256=digest, removed_by=removed_by)
