"""The S3 archive of job logs: `jobs/<job_id>/log.txt`, written conditionally, read back whole.

Every object carries its content version, SHA-256 and part count as metadata, and is sent
with its SHA-256 checksum so that S3 (AWS, SeaweedFS) refuses a body damaged in transit. Writes
are conditional (`If-None-Match: *` for a new object, `If-Match: <etag>` over the object last
read) so that a stale writer cannot replace what another wrote meanwhile. Every request runs
under a deadline (`TransferLimits`) and reports to an optional `Progress`.
"""

from __future__ import annotations

import base64
import hashlib
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError, FlexibleChecksumError

from travis_logs.errors import ArchiveMismatch, ArchiveMissing, LogsError
from travis_logs.settings import Settings
from travis_logs.transfer import CountingBody, Progress, TransferLimits, deadline

if TYPE_CHECKING:
    from types_aiobotocore_s3.client import S3Client
    from types_aiobotocore_s3.type_defs import GetObjectOutputTypeDef

CONTENT_TYPE = "text/plain; charset=utf-8"
_VERSION = "content-version"
_SHA256 = "sha256"
_PARTS = "parts"
_CHUNK = 1 << 20
_MISSING = {"404", "NoSuchKey", "NotFound"}
# 409 ConditionalRequestConflict: AWS's answer when two conditional writes race.
_REFUSED = {"PreconditionFailed", "412", "ConditionalRequestConflict", "409"}


class ArchiveConflict(LogsError):
    """A conditional write was refused: the object changed since it was read."""


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


def sha256_hex(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


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
                    ChecksumSHA256=base64.b64encode(digest.digest()).decode(),
                    Metadata={
                        _VERSION: str(version),
                        _SHA256: digest.hexdigest(),
                        _PARTS: str(parts),
                    },
                    **condition,
                )
        except ClientError as err:
            # A vanished object under If-Match is a change since it was read, like a 412.
            if _code(err) in _REFUSED | _MISSING:
                raise ArchiveConflict(f"{self.key(job_id)} changed since it was read") from err
            raise
        return StoredObject(put["ETag"], len(body), version, digest.hexdigest())

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

    async def digest(self, job_id: int, progress: Progress | None = None) -> Digest | None:
        """Read the object back and hash it; None when there is none."""
        got = await self._get(job_id, progress)
        if got is None:
            return None
        hasher, size, intact = hashlib.sha256(), 0, True
        try:
            async with self._request("read", job_id, progress, got["ContentLength"]):
                async for chunk in got["Body"].iter_chunks(_CHUNK):
                    hasher.update(chunk)
                    size += len(chunk)
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
        self, job_id: int, body: bytes, *, version: int, progress: Progress | None = None
    ) -> None:
        """Write the log's index beside it, marked with the content version it describes.
        Unconditional: an index is derived from the log, and the log's round rewrites both."""
        async with self._request("put index", job_id, progress, len(body)):
            await self._s3.put_object(
                Bucket=self._bucket,
                Key=self.index_key(job_id),
                Body=body,
                ContentType="application/json",
                ChecksumAlgorithm="SHA256",
                Metadata={_VERSION: str(version)},
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
