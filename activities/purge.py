"""Purging a log from the database once its archive is verified.

Purge re-checks, under a lock on the log's row, that the verified archive holds the content
version being purged; then it NULLs the content and deletes exactly the parts in the part
index (the parts that archive holds). A part stored since, or a content replaced since, is
left alone and the purge reports why, so the workflow aggregates again first.
"""

from __future__ import annotations

import asyncpg
from temporalio import activity

from activities.models import (
    PURGE_LOG,
    PurgeInput,
    PurgeResult,
)

# One statement, so one round trip and its own transaction: the row locked (a concurrent
# change committed meanwhile is what the lock returns), checked against version $2, and
# only then its content NULLed and exactly its indexed parts deleted.
_PURGE = """
WITH l AS (
    SELECT id, content_version, archive_version, archive_verified, part_numbers FROM logs
    WHERE job_id = $1 FOR NO KEY UPDATE
), ok AS (
    SELECT id, part_numbers FROM l
    WHERE content_version = $2 AND archive_version = $2 AND archive_verified
), deleted AS (
    DELETE FROM log_parts p USING ok WHERE p.log_id = ok.id AND p.number = ANY(ok.part_numbers)
    RETURNING 1
), purged AS (
    UPDATE logs SET content = NULL, purged_at = now(), updated_at = now()
    FROM ok WHERE logs.id = ok.id RETURNING 1
)
SELECT content_version, archive_version, archive_verified,
       (SELECT count(*) FROM deleted) AS parts_deleted,
       EXISTS (SELECT 1 FROM purged) AS purged
FROM l
"""


class PurgeActivities:
    """purge_log over the injected pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn(name=PURGE_LOG.name)
    async def purge_log(self, inp: PurgeInput) -> PurgeResult:
        """NULL the content and delete the archived parts, if the archive is the verified one."""
        row = await self._pool.fetchrow(_PURGE, inp.job_id, inp.content_version)
        if row is None or not row["purged"]:
            return PurgeResult(purged=False, reason=_refusal(row, inp.content_version))
        return PurgeResult(purged=True, parts_deleted=row["parts_deleted"])


def _refusal(row: asyncpg.Record | None, version: int) -> str:
    """Why this log was not purged as `version` (the statement's own test, in words)."""
    if row is None:
        return "the log does not exist"
    if row["content_version"] != version:
        return f"the content changed (version {row['content_version']}, archived {version})"
    if row["archive_version"] != version or not row["archive_verified"]:
        return f"no verified archive of version {version}"
    return ""
