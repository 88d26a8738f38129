"""The S3 archive of job logs: `jobs/<job_id>/log.txt`, written conditionally, read back whole.

Every object carries its content version, SHA-256 and part count as metadata, and is sent
with its SHA-256 checksum so that S3 (AWS, SeaweedFS) refuses a body damaged in transit. Writes
are conditional (`If-None-Match: *` for a new object, `If-Match: <etag>` over the object last
read) so that a stale writer cannot replace what another wrote meanwhile. Every request runs
under a deadline (`TransferLimits`) and reports to an optional `Progress`.

A log larger than one part (`TransferLimits.part_bytes`) is written from a stream of chunks
as a multipart upload, one part in memory at a time, each part sent with its own SHA-256.
S3 then keeps a checksum of the parts' checksums, not of the object, so only reading the
object back and hashing it (`digest`) says the bytes are the log: verify does that for every
object, of either kind.

Beside a log whose index is too large for its row (activities/indexing.py),
`jobs/<job_id>/log.index.json` carries the content version and SHA-256 of the log it
describes and its own SHA-256, so that a stale or damaged index is told apart from the index
of the archived log.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import AsyncIterable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, FlexibleChecksumError

from travis_logs.errors import ArchiveMismatch, ArchiveMissing, LogsError
from travis_logs.settings import Settings
from travis_logs.transfer import CountingBody, Progress, Tally, TransferLimits, deadline, pieces

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client
    from types_aiobotocore_s3.type_defs import GetObjectOutputTypeDef

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; charset=utf-8"
_VERSION = "content-version"
_SHA256 = "sha256"
_PARTS = "parts"
_LOG_SHA256 = "log-sha256"  # on the index: the SHA-256 of the log it describes
_CHUNK = 1 << 20
_MISSING = {"404", "NoSuchKey", "NotFound"}
# 409 ConditionalRequestConflict: AWS's answer when two conditional writes race.
_REFUSED = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


class ArchiveConflict(LogsError):
    """A conditional write was refused: the object changed since it was read."""


class StreamMismatch(LogsError):
    """The bytes streamed for an upload are not the size and SHA-256 announced for them."""


@dataclass(frozen=True)
class StoredObject:
    """What S3 says about an archived object (without reading its body)."""

    etag: str
    size: int
    version: int | None  # None: not written by this service (no metadata)
    sha256: str | None  # hex, as recorded at upload


@dataclass(frozen=True)
class Digest:
    """The archived object as read back: its real size and SHA-256."""

    size: int
    sha256: str
    version: int | None
    intact: bool  # False when S3's stored checksum does not match the bytes it returned


@dataclass(frozen=True)
class StoredIndex:
    """The log's index as read back, with what its metadata says it describes."""

    body: bytes
    version: int | None  # the content version of the log it describes
    log_sha256: str | None  # the SHA-256 of the log it describes
    intact: bool  # its bytes match the SHA-256 written with it


@dataclass(frozen=True)
class Announced:
    """What a streamed upload will be, known before its first byte (S3 takes metadata then)."""

    size: int
    sha256: str
    version: int
    parts: int


def sha256_hex(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def _log_metadata(version: int, sha256: str, parts: int) -> dict[str, str]:
    return {_VERSION: str(version), _SHA256: sha256, _PARTS: str(parts)}


def _check(job_id: int, tally: Tally, what: Announced) -> None:
    """The streamed bytes are the announced ones (else the log changed while it was read)."""
    if (tally.size, tally.sha256) != (what.size, what.sha256):
        raise StreamMismatch(
            f"jobs/{job_id}/log.txt: streamed {tally.size} bytes, SHA-256 {tally.sha256[:12]}…,"
            f" announced {what.size} bytes, SHA-256 {what.sha256[:12]}…"
        )


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _version(metadata: dict[str, str]) -> int | None:
    raw = metadata.get(_VERSION, "")
    return int(raw) if raw.isdigit() else None


class ArchiveStore:
    """Put, inspect, read back and delete archived logs in one bucket."""

    def __init__(self, s3: S3Client, bucket: str, limits: TransferLimits | None = None) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._limits = limits or TransferLimits()

    @classmethod
    def for_settings(cls, s3: S3Client, settings: Settings) -> ArchiveStore:
        """The store on the configured bucket, with the configured request deadlines."""
        return cls(s3, settings.s3_bucket, TransferLimits.from_settings(settings))

    @property
    def client(self) -> S3Client:
        """The S3 client the store writes through (operators' tools and tests read with it)."""
        return self._s3

    @property
    def bucket(self) -> str:
        return self._bucket

    @property
    def part_bytes(self) -> int:
        """Logs up to this size go up in one PUT; larger ones in parts of this size."""
        return self._limits.part_bytes

    @staticmethod
    def key(job_id: int) -> str:
        return f"jobs/{job_id}/log.txt"

    def _request(
        self, what: str, job_id: int, progress: Progress | None, body_bytes: int = 0
    ) -> AbstractAsyncContextManager[None]:
        """One request under its deadline, counted as progress."""
        if progress is not None:
            progress.begin(what)
        return deadline(f"{what} {self.key(job_id)}", self._limits.seconds(body_bytes))

    async def head(self, job_id: int, progress: Progress | None = None) -> StoredObject | None:
        """The object's etag, size and our metadata; None when there is none."""
        try:
            async with self._request("head", job_id, progress):
                head = await self._s3.head_object(Bucket=self._bucket, Key=self.key(job_id))
        except ClientError as err:
            if _code(err) in _MISSING:
                return None
            raise
        meta = head.get("Metadata", {})
        return StoredObject(
            etag=head["ETag"],
            size=head["ContentLength"],
            version=_version(meta),
            sha256=meta.get(_SHA256),
        )

    async def put(
        self,
        job_id: int,
        body: bytes,
        *,
        version: int,
        parts: int,
        if_match: str | None,
        progress: Progress | None = None,
    ) -> StoredObject:
        """Write the log; over `if_match` when given, else only where no object exists."""
        digest = hashlib.sha256(body)
        condition: dict[str, Any] = {"IfMatch": if_match} if if_match else {"IfNoneMatch": "*"}
        try:
            async with self._request("put", job_id, progress, len(body)):
                put = await self._s3.put_object(
                    Bucket=self._bucket,
                    Key=self.key(job_id),
                    Body=CountingBody(body, progress or Progress()),
                    ContentType=CONTENT_TYPE,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=_b64(digest.digest()),
                    Metadata=_log_metadata(version, digest.hexdigest(), parts),
                    **condition,
                )
        except ClientError as err:
            # A vanished object under If-Match is a change since it was read, like a 412.
            if _code(err) in _REFUSED | _MISSING:
                raise ArchiveConflict(f"{self.key(job_id)} changed since it was read") from err
            raise
        return StoredObject(put["ETag"], len(body), version, digest.hexdigest())

    async def put_stream(
        self,
        job_id: int,
        chunks: AsyncIterable[bytes],
        what: Announced,
        *,
        if_match: str | None,
        progress: Progress | None = None,
    ) -> StoredObject:
        """Write the log from `chunks`: one PUT when it fits in a part, else a multipart
        upload holding one part at a time. StreamMismatch (and nothing written) when the
        chunks are not the announced size and SHA-256."""
        if what.size <= self._limits.part_bytes:
            body = b"".join([chunk async for chunk in chunks])
            _check(job_id, Tally.of(body), what)
            return await self.put(
                job_id,
                body,
                version=what.version,
                parts=what.parts,
                if_match=if_match,
                progress=progress,
            )
        return await self._multipart(job_id, chunks, what, if_match, progress or Progress())

    async def _multipart(
        self,
        job_id: int,
        chunks: AsyncIterable[bytes],
        what: Announced,
        if_match: str | None,
        progress: Progress,
    ) -> StoredObject:
        key = self.key(job_id)
        async with self._request("start upload", job_id, progress):
            started = await self._s3.create_multipart_upload(
                Bucket=self._bucket,
                Key=key,
                ContentType=CONTENT_TYPE,
                ChecksumAlgorithm="SHA256",
                Metadata=_log_metadata(what.version, what.sha256, what.parts),
            )
        upload_id = started["UploadId"]
        try:
            sent: list[dict[str, Any]] = []
            tally = Tally()
            async for piece in pieces(chunks, self._limits.part_bytes):
                checksum = _b64(hashlib.sha256(piece).digest())
                number = len(sent) + 1
                async with self._request(f"put part {number}", job_id, progress, len(piece)):
                    part = await self._s3.upload_part(
                        Bucket=self._bucket,
                        Key=key,
                        UploadId=upload_id,
                        PartNumber=number,
                        Body=CountingBody(piece, progress, offset=tally.size),
                        ChecksumAlgorithm="SHA256",
                        ChecksumSHA256=checksum,
                    )
                tally.update(piece)
                sent.append(
                    {"PartNumber": number, "ETag": part["ETag"], "ChecksumSHA256": checksum}
                )
            _check(job_id, tally, what)
            done = await self._complete(job_id, upload_id, sent, what.size, if_match, progress)
        except BaseException:
            await self._abort(job_id, upload_id)
            raise
        return StoredObject(done, what.size, what.version, what.sha256)

    async def _complete(
        self,
        job_id: int,
        upload_id: str,
        sent: list[dict[str, Any]],
        size: int,
        if_match: str | None,
        progress: Progress,
    ) -> str:
        """Join the parts into the object, on the same condition as a PUT; its ETag."""
        if if_match is not None:
            # Not every S3 honours If-Match on this request (moto ignores it; AWS does not):
            # look first, so that a stale writer is refused there too, but for a short race.
            stored = await self.head(job_id, progress)
            if stored is None or stored.etag != if_match:
                raise ArchiveConflict(f"{self.key(job_id)} changed since it was read")
        condition: dict[str, Any] = {"IfMatch": if_match} if if_match else {"IfNoneMatch": "*"}
        try:
            # S3 may take a while to join a large object: the time a body of its size takes.
            async with self._request("complete upload", job_id, progress, size):
                done = await self._s3.complete_multipart_upload(
                    Bucket=self._bucket,
                    Key=self.key(job_id),
                    UploadId=upload_id,
                    MultipartUpload={"Parts": sent},  # type: ignore[typeddict-item]
                    MpuObjectSize=size,  # S3 refuses to join parts of another total size
                    **condition,
                )
        except ClientError as err:
            if _code(err) in _REFUSED | _MISSING:
                raise ArchiveConflict(f"{self.key(job_id)} changed since it was read") from err
            raise
        return done["ETag"]

    async def _abort(self, job_id: int, upload_id: str) -> None:
        """Drop an unfinished upload's parts (best effort: a bucket lifecycle rule that aborts
        incomplete multipart uploads catches what a dead worker leaves)."""
        try:
            async with self._request("abort upload", job_id, None):
                await self._s3.abort_multipart_upload(
                    Bucket=self._bucket, Key=self.key(job_id), UploadId=upload_id
                )
        except Exception as err:  # the upload's own error is the one to raise
            log.warning("%s: could not abort upload: %s", self.key(job_id), str(err)[:200])

    async def _get(self, job_id: int, progress: Progress | None) -> GetObjectOutputTypeDef | None:
        """The GetObject response with checksum validation on; None when there is no object."""
        try:
            async with self._request("get", job_id, progress):
                return await self._s3.get_object(
                    Bucket=self._bucket, Key=self.key(job_id), ChecksumMode="ENABLED"
                )
        except ClientError as err:
            if _code(err) in _MISSING:
                return None
            raise

    async def digest(
        self,
        job_id: int,
        progress: Progress | None = None,
        sink: Callable[[bytes], None] | None = None,
    ) -> Digest | None:
        """Read the object back and hash it, a chunk at a time (each also handed to `sink`);
        None when there is none."""
        got = await self._get(job_id, progress)
        if got is None:
            return None
        hasher, size, intact = hashlib.sha256(), 0, True
        try:
            async with self._request("read", job_id, progress, got["ContentLength"]):
                async for chunk in got["Body"].iter_chunks(_CHUNK):
                    hasher.update(chunk)
                    size += len(chunk)
                    if sink is not None:
                        sink(chunk)
                    if progress is not None:
                        progress.moved(size)
        except FlexibleChecksumError:
            intact = False  # the bytes differ from the checksum S3 stored with them
        finally:
            got["Body"].close()
        return Digest(size, hasher.hexdigest(), _version(got.get("Metadata", {})), intact)

    async def fetch(self, job_id: int, progress: Progress | None = None) -> bytes | None:
        """The archived log's bytes; None when there is none; ArchiveMismatch when damaged."""
        got = await self._get(job_id, progress)
        if got is None:
            return None
        try:
            async with (
                self._request("read", job_id, progress, got["ContentLength"]),
                got["Body"] as body,
            ):
                data: bytes = await body.read()
        except FlexibleChecksumError as err:
            raise ArchiveMismatch(f"{self.key(job_id)} does not match its checksum") from err
        return data

    async def fetch_recorded(
        self, job_id: int, size: int | None, sha256: str | None, progress: Progress | None = None
    ) -> bytes:
        """The archived log, only if it is the one recorded (size, SHA-256) when it was verified.

        ArchiveMissing when there is no object, ArchiveMismatch when it differs from the record
        or from S3's own checksum. Without a recorded SHA-256 (an adopted log that travis-logs
        verified by size only) an object intact by S3's checksum is taken.
        """
        data = await self.fetch(job_id, progress)
        if data is None:
            raise ArchiveMissing(f"{self.key(job_id)} is missing")
        if sha256 is not None and (len(data), sha256_hex(data)) != (size, sha256):
            raise ArchiveMismatch(f"{self.key(job_id)} differs from the verified archive")
        return data

    async def fetch_range(
        self, job_id: int, start: int, end: int, progress: Progress | None = None
    ) -> bytes | None:
        """Bytes `start`..`end` (inclusive) of the archived log, by an HTTP Range request: only
        those bytes travel. None when there is no object. Not checked against the object's
        checksum, which covers the whole object only."""
        try:
            async with self._request("get range", job_id, progress):
                got = await self._s3.get_object(
                    Bucket=self._bucket, Key=self.key(job_id), Range=f"bytes={start}-{end}"
                )
        except ClientError as err:
            if _code(err) in _MISSING:
                return None
            raise
        async with (
            self._request("read range", job_id, progress, got["ContentLength"]),
            got["Body"] as body,
        ):
            data: bytes = await body.read()
        if progress is not None:
            progress.moved(len(data))
        return data

    @staticmethod
    def index_key(job_id: int) -> str:
        return f"jobs/{job_id}/log.index.json"

    async def put_index(
        self,
        job_id: int,
        body: bytes,
        *,
        version: int,
        log_sha256: str,
        progress: Progress | None = None,
    ) -> None:
        """Write the log's index beside it, marked with the content version and SHA-256 of
        the log it describes and its own SHA-256. Unconditional: an index is derived from
        the log, and whoever writes it checked the log's version first."""
        async with self._request("put index", job_id, progress, len(body)):
            await self._s3.put_object(
                Bucket=self._bucket,
                Key=self.index_key(job_id),
                Body=body,
                ContentType="application/json",
                ChecksumAlgorithm="SHA256",
                Metadata={
                    _VERSION: str(version),
                    _LOG_SHA256: log_sha256,
                    _SHA256: sha256_hex(body),
                },
            )

    async def read_index(self, job_id: int, progress: Progress | None = None) -> StoredIndex | None:
        """The log's index with what it says it describes; None when there is none."""
        try:
            async with self._request("get index", job_id, progress):
                got = await self._s3.get_object(
                    Bucket=self._bucket, Key=self.index_key(job_id), ChecksumMode="ENABLED"
                )
                async with got["Body"] as stream:
                    body: bytes = await stream.read()
        except FlexibleChecksumError:
            return StoredIndex(b"", None, None, intact=False)
        except ClientError as err:
            if _code(err) in _MISSING:
                return None
            raise
        meta = got.get("Metadata", {})
        return StoredIndex(
            body,
            _version(meta),
            meta.get(_LOG_SHA256),
            intact=meta.get(_SHA256) == sha256_hex(body),
        )

    async def fetch_index(self, job_id: int, progress: Progress | None = None) -> bytes | None:
        """The log's index as written; None when there is none."""
        try:
            async with self._request("get index", job_id, progress):
                got = await self._s3.get_object(Bucket=self._bucket, Key=self.index_key(job_id))
            async with got["Body"] as body:
                data: bytes = await body.read()
        except ClientError as err:
            if _code(err) in _MISSING:
                return None
            raise
        return data

    async def delete_index(self, job_id: int, progress: Progress | None = None) -> None:
        async with self._request("delete index", job_id, progress):
            await self._s3.delete_object(Bucket=self._bucket, Key=self.index_key(job_id))

    async def delete(self, job_id: int, progress: Progress | None = None) -> None:
        """Remove the object (S3 answers deletes of missing keys with success too)."""
        async with self._request("delete", job_id, progress):
            await self._s3.delete_object(Bucket=self._bucket, Key=self.key(job_id))
