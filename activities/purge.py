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

_LOCK = """
SELECT id, content_version, archive_version, archive_verified, part_numbers FROM logs
WHERE job_id = $1 FOR NO KEY UPDATE
"""
_DELETE_ARCHIVED_PARTS = "DELETE FROM log_parts WHERE log_id = $1 AND number = ANY($2::integer[])"
_PURGE = "UPDATE logs SET content = NULL, purged_at = now(), updated_at = now() WHERE id = $1"


class PurgeActivities:
    """purge_log over the injected pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn(name=PURGE_LOG.name)
    async def purge_log(self, inp: PurgeInput) -> PurgeResult:
        """NULL the content and delete the archived parts, if the archive is the verified one."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(_LOCK, inp.job_id)
            reason = _refusal(row, inp.content_version)
            if reason:
                return PurgeResult(purged=False, reason=reason)
            status = await conn.execute(_DELETE_ARCHIVED_PARTS, row["id"], row["part_numbers"])
            await conn.execute(_PURGE, row["id"])
        return PurgeResult(purged=True, parts_deleted=int(status.split()[-1]))


def _refusal(row: asyncpg.Record | None, version: int) -> str:
    """Why this log must not be purged as `version`; empty when it may."""
    if row is None:
        return "the log does not exist"
    if row["content_version"] != version:
        return f"the content changed (version {row['content_version']}, archived {version})"
    if row["archive_version"] != version or not row["archive_verified"]:
        return f"no verified archive of version {version}"
    return ""
