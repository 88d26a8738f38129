"""PUT /logs/:job_id as a workflow update applies it, and removing a cleared log's archive.

Replacing does what travis-logs' `set_log_content` does in one transaction (delete the
parts; set content, aggregated_at, archived_at = NULL, archive_verified = NULL, updated_at,
removed_by, removed_at) and also resets what only this service keeps: the part index, the
final number (a restarted job streams from part 0 again) and purged_at (the content column
is the truth again). The workflow then archives the new content, or deletes the archive when
the content was cleared, so that a removed log is not served from S3.

The new content comes as a claim check: the API stored it in `log_uploads` and the update
names the row and its SHA-256. The row is copied into `logs.content` inside PostgreSQL (the
text never passes through the worker either) and deleted in the same transaction.
"""

from __future__ import annotations

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.models import (
    REMOVE_ARCHIVE,
    REPLACE_CONTENT,
    RemoveArchiveInput,
    RemoveArchiveResult,
    ReplaceInput,
    ReplaceResult,
)
from travis_logs.archive_store import ArchiveStore

_FIND_OR_CREATE = "INSERT INTO logs (job_id) VALUES ($1) ON CONFLICT (job_id) DO NOTHING"
_LOCK = """
SELECT id, content_version, replace_request FROM logs WHERE job_id = $1 FOR NO KEY UPDATE
"""
_DELETE_PARTS = "DELETE FROM log_parts WHERE log_id = $1"
# NULL when the upload is missing, false when its text no longer has the announced checksum.
_UPLOAD_INTACT = """
SELECT encode(sha256(convert_to(content, 'UTF8')), 'hex') = $3
FROM log_uploads WHERE id = $1 AND job_id = $2
"""
_REPLACE = """
UPDATE logs SET content = (SELECT u.content FROM log_uploads u WHERE u.id = $2),
       aggregated_at = CASE WHEN $2::bigint IS NULL THEN NULL ELSE now() END,
       archived_at = NULL, archive_verified = NULL, purged_at = NULL, updated_at = now(),
       verified_at = NULL, replaced_at = now(), first_part_at = NULL, final_part_at = NULL,
       removed_by = $3, removed_at = CASE WHEN $3::bigint IS NULL THEN NULL ELSE now() END,
       final_number = NULL, part_numbers = '{}', part_sizes = '{}',
       content_version = content_version + 1, replace_request = $4,
       -- The new content is whole: the size limit counts from here.
       received_bytes = 0, elided_from = NULL, tail_from = NULL, head_bytes = 0,
       tail_bytes = 0, elided_bytes = 0, elided_parts = 0
WHERE id = $1 RETURNING content_version
"""
_DELETE_UPLOAD = "DELETE FROM log_uploads WHERE id = $1"
# Uploads of API processes that died before their update ran; far older than any retry.
_SWEEP_UPLOADS = "DELETE FROM log_uploads WHERE created_at < now() - interval '7 days'"
_FORGET_ARCHIVE = """
UPDATE logs SET archive_version = NULL, archive_size = NULL, archive_sha256 = NULL,
       archived_at = NULL, archive_verified = NULL, verified_at = NULL, archive_index = NULL
WHERE job_id = $1 AND content IS NULL AND content_version = $2
"""


class ReplaceActivities:
    """replace_content and remove_archive, over the injected pool and archive store."""

    def __init__(self, pool: asyncpg.Pool, store: ArchiveStore) -> None:
        self._pool = pool
        self._store = store

    @activity.defn(name=REPLACE_CONTENT.name)
    async def replace_content(self, inp: ReplaceInput) -> ReplaceResult:
        """Set the log's content (creating its row if needed); a repeated request is a no-op."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(_FIND_OR_CREATE, inp.job_id)
            row = await conn.fetchrow(_LOCK, inp.job_id)
            if row["replace_request"] == inp.request_id:
                return ReplaceResult(row["id"], row["content_version"])
            if inp.upload_id is not None:
                await _check_upload(conn, inp)
            await conn.execute(_DELETE_PARTS, row["id"])
            version = await conn.fetchval(
                _REPLACE, row["id"], inp.upload_id, inp.removed_by, inp.request_id
            )
            await conn.execute(_DELETE_UPLOAD, inp.upload_id)
            await conn.execute(_SWEEP_UPLOADS)
        return ReplaceResult(row["id"], version)

    @activity.defn(name=REMOVE_ARCHIVE.name)
    async def remove_archive(self, inp: RemoveArchiveInput) -> RemoveArchiveResult:
        """Delete jobs/<job_id>/log.txt and forget it, for a log whose content was cleared."""
        await self._store.delete_index(inp.job_id)
        await self._store.delete(inp.job_id)
        status = await self._pool.execute(_FORGET_ARCHIVE, inp.job_id, inp.content_version)
        return RemoveArchiveResult(removed=status != "UPDATE 0")


async def _check_upload(conn: asyncpg.Connection, inp: ReplaceInput) -> None:
    """The claimed upload exists for this job and still has its checksum; else a final error."""
    intact = await conn.fetchval(_UPLOAD_INTACT, inp.upload_id, inp.job_id, inp.sha256)
    if intact is None:
        raise ApplicationError(
            f"upload {inp.upload_id} of job {inp.job_id} does not exist",
            type="UploadMissing",
            non_retryable=True,
        )
    if not intact:
        raise ApplicationError(
            f"upload {inp.upload_id} does not match its SHA-256",
            type="UploadMismatch",
            non_retryable=True,
        )
