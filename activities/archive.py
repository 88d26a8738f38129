"""Archiving a log to S3 and verifying the archived bytes.

Empty logs are archived too, as empty objects: every log then ends its lifecycle the same
visible way (archived, verified, purged), a late part merges into an empty archive like into
any other, and a reader of S3 finds an empty log rather than a missing one that looks like a
loss. (The original skipped blank logs and left them in the database for good.)

The upload never replaces a newer version: it writes with `If-Match` over the object it just
looked at (`If-None-Match: *` when there was none) and refuses when S3 holds a higher content
version. Verify never trusts the upload: it reads the object back and compares size and
SHA-256 with what was written.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from activities.indexing import write_index
from activities.models import (
    ARCHIVE_LOG,
    VERIFY_ARCHIVE,
    ArchiveInput,
    ArchiveResult,
    VerifyInput,
    VerifyResult,
)
from travis_logs.archive_store import (
    ArchiveConflict,
    ArchiveStore,
    Digest,
    StoredObject,
    sha256_hex,
)
from travis_logs.logrow import TEXT_COLUMNS, RowText
from travis_logs.transfer import Progress

_READ = f"""
SELECT id, content, content_version, cardinality(part_numbers) AS parts,
       archive_version IS NULL AS unarchived, {TEXT_COLUMNS},
       archive_version, archive_size, archive_sha256
FROM logs WHERE job_id = $1
"""
_MARK_ARCHIVING = "UPDATE logs SET archiving = true WHERE id = $1"
_RECORD = """
UPDATE logs SET archiving = false, archived_at = now(), archive_verified = NULL,
       verified_at = NULL, archive_version = $2, archive_size = $3, archive_sha256 = $4
WHERE id = $1 AND content_version = $2
"""
_RECORD_VERIFIED = """
UPDATE logs SET archive_verified = $4, verified_at = CASE WHEN $4 THEN now() END
WHERE job_id = $1 AND archive_version = $2 AND archive_sha256 = $3
"""
_WRITE_ATTEMPTS = 3


@dataclass(frozen=True)
class _Upload:
    job_id: int
    body: bytes
    sha256: str
    version: int
    parts: int


class ArchiveActivities:
    """archive_log and verify_archive, over the injected pool and archive store."""

    def __init__(self, pool: asyncpg.Pool, store: ArchiveStore) -> None:
        self._pool = pool
        self._store = store

    @activity.defn(name=ARCHIVE_LOG.name)
    async def archive_log(self, inp: ArchiveInput) -> ArchiveResult:
        """Write the log's current content to jobs/<job_id>/log.txt (idempotent)."""
        row = await self._pool.fetchrow(_READ, inp.job_id)
        if row is not None and row["content"] is None and _archive_is_the_log(row):
            # Purged: the archive is the only copy, so archiving again means reading it back
            # against what was recorded (verify), never writing it from itself.
            return ArchiveResult(
                row["archive_version"], row["archive_size"], row["archive_sha256"], False
            )
        if row is None or row["content"] is None:
            raise ApplicationError(
                f"job {inp.job_id}: no content to archive",
                type="NothingToArchive",
                non_retryable=True,
            )
        body: bytes = row["content"].encode()
        upload = _Upload(inp.job_id, body, sha256_hex(body), row["content_version"], row["parts"])
        await self._pool.execute(_MARK_ARCHIVING, row["id"])
        progress = Progress()
        write = self._write(upload, inp.rewrite, row["unarchived"], progress)
        uploaded = await heartbeating(write, progress)
        index = write_index(
            self._pool, self._store, row["id"], inp.job_id, body, version=upload.version
        )
        await heartbeating(index, progress)
        await self._pool.execute(_RECORD, row["id"], upload.version, len(body), upload.sha256)
        return ArchiveResult(upload.version, len(body), upload.sha256, uploaded)

    async def _write(
        self, upload: _Upload, rewrite: bool, unarchived: bool, progress: Progress
    ) -> bool:
        """Put unless the object holds exactly this already; False when nothing was written."""
        stored: StoredObject | None = None
        for attempt in range(_WRITE_ATTEMPTS):
            # With no archive on record, create it at once (If-None-Match); look at what S3
            # holds only when it refuses, or when there is an archive to replace.
            if attempt or not unarchived:
                stored = await self._store.head(upload.job_id, progress)
                _refuse_newer(upload, stored)
                if not rewrite and _holds(stored, upload):
                    return False  # an earlier attempt wrote it (e.g. before its worker died)
            etag = stored.etag if stored is not None else None
            try:
                await self._store.put(
                    upload.job_id,
                    upload.body,
                    version=upload.version,
                    parts=upload.parts,
                    if_match=etag,
                    progress=progress,
                )
            except ArchiveConflict:
                continue  # written by someone else meanwhile: look again
            return True
        raise ApplicationError(
            f"job {upload.job_id}: the archive kept changing", type="ArchiveConflict"
        )

    @activity.defn(name=VERIFY_ARCHIVE.name)
    async def verify_archive(self, inp: VerifyInput) -> VerifyResult:
        """Read the object back: verified when size, SHA-256 and version are what was written."""
        progress = Progress()
        digest = await heartbeating(self._store.digest(inp.job_id, progress), progress)
        reason = _mismatch(inp, digest)
        await self._pool.execute(
            _RECORD_VERIFIED, inp.job_id, inp.content_version, inp.sha256, not reason
        )
        if digest is None:
            return VerifyResult(verified=False, reason=reason)
        return VerifyResult(not reason, digest.size, digest.sha256, reason)


def _archive_is_the_log(row: asyncpg.Record) -> bool:
    """Purged after a verified archive of the current version: S3 holds the log."""
    return (
        RowText.of(row).purged
        and row["archive_version"] == row["content_version"]
        and (row["archive_sha256"] is not None)
    )


def _refuse_newer(upload: _Upload, stored: StoredObject | None) -> None:
    """An older version never replaces a newer one (e.g. from a worker presumed dead)."""
    if stored is not None and stored.version is not None and stored.version > upload.version:
        raise ApplicationError(
            f"job {upload.job_id}: the archive holds content version {stored.version}, "
            f"newer than {upload.version}; not replacing it",
            type="ArchiveNewer",
            non_retryable=True,
        )


def _holds(stored: StoredObject | None, upload: _Upload) -> bool:
    """The object's metadata says it is exactly this upload (verify reads the bytes)."""
    return stored is not None and (stored.version, stored.sha256, stored.size) == (
        upload.version,
        upload.sha256,
        len(upload.body),
    )


def _mismatch(inp: VerifyInput, digest: Digest | None) -> str:
    """Why the stored object is not the archived log; empty when it is."""
    if digest is None:
        return "the object is missing"
    if not digest.intact:
        return "the object does not match the checksum S3 stored with it"
    if digest.size != inp.size:
        return f"size {digest.size} instead of {inp.size}"
    if digest.sha256 != inp.sha256:
        return f"SHA-256 {digest.sha256[:12]}… instead of {inp.sha256[:12]}…"
    if digest.version != inp.content_version:
        return f"content version {digest.version} instead of {inp.content_version}"
    return ""
