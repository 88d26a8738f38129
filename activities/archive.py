"""Archiving a log to S3 and verifying the archived bytes.

Empty logs are archived too, as empty objects: every log then ends its lifecycle the same
visible way (archived, verified, purged), a late part merges into an empty archive like into
any other, and a reader of S3 finds an empty log rather than a missing one that looks like a
loss. (The original skipped blank logs and left them in the database for good.)

The upload never replaces a newer version: it writes with `If-Match` over the object it just
looked at (`If-None-Match: *` when there was none) and refuses when S3 holds a higher content
version. Verify never trusts the upload: it reads the object back and compares size and
SHA-256 with what was written.

Neither step holds more than one upload part of the log in memory. A log that fits in one
part comes with the round's first read; a larger one is read from PostgreSQL in chunks of
bytes (`_CHUNKS`) and streamed to S3 as a multipart upload, the index of the log built from
the same chunks; its size and SHA-256 are computed by the
database first, since S3 takes them as metadata before the first byte, and the streamed
bytes are hashed again on the way: a stream that is not those bytes writes nothing. Verify
hashes the object as it reads it back, and rebuilds the index from those bytes when the one
beside the log is not this log's (activities/indexing.py).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from activities.indexing import ROW_INDEX_MAX_BYTES, encode_index, index_problem, write_index
from activities.models import (
    ARCHIVE_LOG,
    VERIFY_ARCHIVE,
    ArchiveInput,
    ArchiveResult,
    VerifyInput,
    VerifyResult,
)
from travis_logs.archive_store import (
    Announced,
    ArchiveConflict,
    ArchiveStore,
    Digest,
    StoredObject,
)
from travis_logs.log_index import IndexBuilder
from travis_logs.logrow import TEXT_COLUMNS, RowText
from travis_logs.stored_index import ARRIVALS, HeldParts
from travis_logs.transfer import Progress

# The round's one read, which marks the row `archiving` when it has content: the content's
# size and SHA-256 as UTF-8 bytes (as Python encodes it; in a UTF8 database, no conversion),
# by the database, since S3 takes them before the upload's first byte; the bytes themselves
# when they fit in one upload part ($2), so that most logs cost no second read; and the
# part index with arrival times, which the log's index keeps. One snapshot, so all of it is
# of one content version. The subquery converts the content once (OFFSET 0: not flattened).
_READ = f"""
WITH marked AS (UPDATE logs SET archiving = true WHERE job_id = $1 AND content IS NOT NULL)
SELECT id, content_version, cardinality(part_numbers) AS parts,
       archive_version IS NULL AS unarchived, {TEXT_COLUMNS},
       archive_version, archive_size, archive_sha256,
       octet_length(b) AS size, encode(sha256(b), 'hex') AS sha256,
       CASE WHEN octet_length(b) <= $2 THEN b END AS body,
       part_numbers, part_sizes, arrivals
FROM (SELECT l.*, convert_to(l.content, 'UTF8') AS b, {ARRIVALS}
      FROM logs l WHERE l.job_id = $1 OFFSET 0) AS r
"""
# The content in byte ranges of its UTF-8 encoding. Byte offsets, not `substring(content
# ...)` on the text: a character offset in UTF-8 is found by scanning from the start, so
# reading a log that way costs the square of its size (a minute for 64 MiB), where a byte
# range of bytea is found at once. The subquery converts (and detoasts) the value once per
# statement: OFFSET 0 keeps the planner from flattening it, which would convert the whole
# value again for every chunk (45 s instead of 1 s for 64 MiB). A chunk may end inside a
# character, which is harmless: chunks are never decoded, only hashed, indexed (bytes) and
# sent, and their concatenation is the text's exact bytes. One statement: one snapshot of
# one content version, read a chunk at a time (rows come in generate_series' order; the
# hash check catches anything else).
_CHUNKS = """
SELECT substring(l.b FROM s FOR $3) AS chunk
FROM (SELECT convert_to(content, 'UTF8') AS b FROM logs
      WHERE id = $1 AND content_version = $2 OFFSET 0) AS l,
     generate_series(1, octet_length(l.b), $3) AS s
"""
_CHUNK_BYTES = 1 << 20
# The index goes with the archive it describes: `archive_index` NULL when it is in S3.
_RECORD = """
UPDATE logs SET archiving = false, archived_at = now(), archive_verified = NULL,
       verified_at = NULL, archive_version = $2, archive_size = $3, archive_sha256 = $4,
       archive_index = $5
WHERE id = $1 AND content_version = $2
"""
_RECORD_VERIFIED = """
UPDATE logs SET archive_verified = $4, verified_at = CASE WHEN $4 THEN now() END
WHERE job_id = $1 AND archive_version = $2 AND archive_sha256 = $3
"""
_LOG_INDEX = """
SELECT id, archive_index IS NOT NULL AND archive_version = $2 AND archive_sha256 = $3 AS in_row
FROM logs WHERE job_id = $1
"""
_WRITE_ATTEMPTS = 3


@dataclass(frozen=True)
class _Upload:
    job_id: int
    log_id: int
    what: Announced
    held: HeldParts  # the parts of `what.version`, read with it

    @property
    def version(self) -> int:
        return self.what.version


@dataclass(frozen=True)
class _Indexed:
    """How the archive round left the index: `in_row`, the index for the row (None: S3 has
    it, or no one), and whether the index of this version is in place."""

    in_row: bytes | None
    checked: bool


class _Content:
    """The log's content, indexed as it passes: `indexed` is the index of the last read that
    went to the end.

    A log that fits in one upload part (most logs) came with the round's first read
    (`body`), so uploads stalled on S3 hold no database connection; a larger one is read
    through a cursor, a chunk at a time, which holds one connection while its parts go up.
    """

    def __init__(
        self, pool: asyncpg.Pool, upload: _Upload, progress: Progress, body: bytes | None
    ) -> None:
        self._pool = pool
        self._upload = upload
        self._progress = progress
        self._body = body
        self.indexed: IndexBuilder | None = None

    async def chunks(self) -> AsyncGenerator[bytes, None]:
        builder = IndexBuilder()
        args = (_CHUNKS, self._upload.log_id, self._upload.version, _CHUNK_BYTES)
        self._progress.begin("read content")
        read = 0
        async with aclosing(self._read(*args)) as source:  # its connection goes back at once
            async for chunk in source:
                builder.feed(chunk)
                read += len(chunk)
                self._progress.moved(read)
                yield chunk
        self.indexed = builder

    async def _read(self, query: str, *args: object) -> AsyncGenerator[bytes, None]:
        if self._body is not None:
            yield self._body
            return
        async with self._pool.acquire() as conn, conn.transaction(readonly=True):
            async for record in conn.cursor(query, *args, prefetch=1):
                yield record["chunk"]


class ArchiveActivities:
    """archive_log and verify_archive, over the injected pool and archive store; indexes of
    at most `row_index_max_bytes` are kept in the log's row (activities/indexing.py)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        store: ArchiveStore,
        row_index_max_bytes: int = ROW_INDEX_MAX_BYTES,
    ) -> None:
        self._pool = pool
        self._store = store
        self._row_max = row_index_max_bytes

    @activity.defn(name=ARCHIVE_LOG.name)
    async def archive_log(self, inp: ArchiveInput) -> ArchiveResult:
        """Write the log's current content to jobs/<job_id>/log.txt (idempotent), and its
        index beside it."""
        row = await self._pool.fetchrow(_READ, inp.job_id, self._store.part_bytes)
        if row is not None and not row["has_text"] and _archive_is_the_log(row):
            # Purged: the archive is the only copy, so archiving again means reading it back
            # against what was recorded (verify), never writing it from itself.
            return ArchiveResult(
                row["archive_version"], row["archive_size"], row["archive_sha256"], False
            )
        if row is None or not row["has_text"]:
            raise ApplicationError(
                f"job {inp.job_id}: no content to archive",
                type="NothingToArchive",
                non_retryable=True,
            )
        what = Announced(row["size"], row["sha256"], row["content_version"], row["parts"])
        upload = _Upload(inp.job_id, row["id"], what, HeldParts.of(row))
        progress = Progress()
        content = _Content(self._pool, upload, progress, row["body"])
        write = self._write(upload, content, inp.rewrite, row["unarchived"], progress)
        uploaded = await heartbeating(write, progress)
        indexed = await heartbeating(self._index(upload, content, uploaded, progress), progress)
        status = await self._pool.execute(
            _RECORD, row["id"], what.version, what.size, what.sha256, indexed.in_row
        )
        # Not recorded (the log holds a newer version now): an index meant for the row is
        # nowhere, and that round indexes its own version.
        checked = indexed.checked and (indexed.in_row is None or status != "UPDATE 0")
        return ArchiveResult(what.version, what.size, what.sha256, uploaded, checked)

    async def _write(
        self,
        upload: _Upload,
        content: _Content,
        rewrite: bool,
        unarchived: bool,
        progress: Progress,
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
                async with aclosing(content.chunks()) as chunks:
                    await self._store.put_stream(
                        upload.job_id, chunks, upload.what, if_match=etag, progress=progress
                    )
            except ArchiveConflict:
                continue  # written by someone else meanwhile: look again
            return True
        raise ApplicationError(
            f"job {upload.job_id}: the archive kept changing", type="ArchiveConflict"
        )

    async def _index(
        self, upload: _Upload, content: _Content, uploaded: bool, progress: Progress
    ) -> _Indexed:
        """The log's index: for the row when small (recorded with the archive), else written
        to S3 beside the log. After an upload it is built from the upload's read of the
        content; otherwise (the object held this version already), unless the one in S3 is
        this log's already or a newer round's, from a read of its own (a small log's index,
        kept in the row, is built again: its content is small).

        After an upload the index in S3 can only be older than this log (the upload checked
        that S3 held no newer version), so looking at it first would cost an S3 request for
        nothing. A newer round writing meanwhile may find its index overwritten by this
        older one: its verify reads the index, sees another version and rebuilds it from the
        bytes it reads."""
        what = upload.what
        if not uploaded:  # before reading the content again: a large log's may be in place
            stored = await self._store.read_index(upload.job_id, progress)
            if stored is not None and (stored.version or 0) > what.version:
                return _Indexed(None, checked=False)  # a newer content version's round wrote it
            if not index_problem(stored, what.version, what.sha256, what.size):
                return _Indexed(None, checked=True)
        if content.indexed is None:
            async with aclosing(content.chunks()) as chunks:
                async for _ in chunks:
                    pass  # the read indexes what it reads
        assert content.indexed is not None  # a read that ends sets it
        encoded = await encode_index(
            self._pool, upload.log_id, content.indexed, what.version, upload.held
        )
        if encoded is None:
            return _Indexed(None, checked=False)  # the log holds a newer version now
        if len(encoded) <= self._row_max:
            return _Indexed(encoded, checked=True)
        await self._store.put_index(
            upload.job_id, encoded, version=what.version, log_sha256=what.sha256, progress=progress
        )
        return _Indexed(None, checked=True)

    @activity.defn(name=VERIFY_ARCHIVE.name)
    async def verify_archive(self, inp: VerifyInput) -> VerifyResult:
        """Read the object back: verified when size, SHA-256 and version are what was written.
        An index beside it that is not this log's is rebuilt from the bytes read back; one
        that the archive round wrote or checked is not read again."""
        progress = Progress()
        row = await self._pool.fetchrow(_LOG_INDEX, inp.job_id, inp.content_version, inp.sha256)
        index_wrong = ""
        if not inp.index_checked and not (row is not None and row["in_row"]):
            stored_index = await self._store.read_index(inp.job_id, progress)
            index_wrong = index_problem(stored_index, inp.content_version, inp.sha256, inp.size)
        builder = IndexBuilder() if index_wrong else None
        read = self._store.digest(inp.job_id, progress, sink=builder.feed if builder else None)
        digest = await heartbeating(read, progress)
        reason = _mismatch(inp, digest)
        rebuilt = ""
        if not reason and builder is not None and row is not None:
            write = write_index(
                self._pool,
                self._store,
                row["id"],
                inp.job_id,
                builder,
                version=inp.content_version,
                sha256=inp.sha256,
                row_max_bytes=self._row_max,
                progress=progress,
            )
            rebuilt = index_wrong if await heartbeating(write, progress) else ""
        await self._pool.execute(
            _RECORD_VERIFIED, inp.job_id, inp.content_version, inp.sha256, not reason
        )
        if digest is None:
            return VerifyResult(verified=False, reason=reason)
        return VerifyResult(not reason, digest.size, digest.sha256, reason, rebuilt)


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
    what = upload.what
    return stored is not None and (stored.version, stored.sha256, stored.size) == (
        what.version,
        what.sha256,
        what.size,
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
