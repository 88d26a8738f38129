"""The archive store against moto S3: reading an archive back only if it is the one recorded
when it was verified; streamed uploads, in one PUT or in parts."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from travis_logs.archive_store import (
    Announced,
    ArchiveConflict,
    ArchiveStore,
    Digest,
    StreamMismatch,
    sha256_hex,
)
from travis_logs.errors import ArchiveMismatch, ArchiveMissing
from travis_logs.transfer import MIN_PART_BYTES, Progress, TransferLimits

BODY = "a log ✓\n".encode()


async def test_the_recorded_archive_is_fetched(store: ArchiveStore, job_id: int) -> None:
    await store.put(job_id, BODY, version=1, parts=1, if_match=None)
    assert await store.fetch_recorded(job_id, len(BODY), sha256_hex(BODY)) == BODY


async def test_an_archive_that_differs_from_its_record_is_refused(
    store: ArchiveStore, job_id: int
) -> None:
    """Same size, other bytes: the SHA-256 tells them apart; another size is refused too."""
    await store.put(job_id, BODY, version=1, parts=1, if_match=None)
    other = BODY.replace(b"a", b"b")
    with pytest.raises(ArchiveMismatch):
        await store.fetch_recorded(job_id, len(other), sha256_hex(other))
    with pytest.raises(ArchiveMismatch):
        await store.fetch_recorded(job_id, len(BODY) + 1, sha256_hex(BODY))


async def test_a_missing_archive_is_named(store: ArchiveStore, job_id: int) -> None:
    with pytest.raises(ArchiveMissing, match=f"jobs/{job_id}/log.txt"):
        await store.fetch_recorded(job_id, len(BODY), sha256_hex(BODY))


async def test_without_a_recorded_checksum_an_intact_object_is_taken(
    store: ArchiveStore, job_id: int
) -> None:
    """An adopted log that travis-logs verified by size only has no SHA-256 on record."""
    await store.put(job_id, BODY, version=1, parts=1, if_match=None)
    assert await store.fetch_recorded(job_id, None, None) == BODY


PART = MIN_PART_BYTES
# Multibyte characters on every line, so parts and chunks end inside characters.
BIG = b"".join(b"%07d h\xc3\xa9llo \xe2\x9c\x93 build output\n" % n for n in range(400_000))


async def chunks(body: bytes, size: int = 1 << 20) -> AsyncIterator[bytes]:
    for at in range(0, len(body), size):
        yield body[at : at + size]


@pytest_asyncio.fixture
async def parted(store: ArchiveStore) -> ArchiveStore:
    """The test bucket's store with S3's smallest part size."""
    return ArchiveStore(store.client, store.bucket, TransferLimits(part_bytes=PART))


def announced(body: bytes, version: int = 1) -> Announced:
    return Announced(len(body), sha256_hex(body), version, parts=3)


async def test_a_log_larger_than_a_part_goes_up_in_parts_and_reads_back_exact(
    parted: ArchiveStore, job_id: int
) -> None:
    """A multipart upload (ETag "-N"), byte-exact, hashed by reading it back; metadata kept."""
    assert len(BIG) > 2 * PART
    progress = Progress()
    written = await parted.put_stream(
        job_id, chunks(BIG, 300_001), announced(BIG), if_match=None, progress=progress
    )
    assert written.etag.strip('"').endswith(f"-{-(-len(BIG) // PART)}")
    assert progress.mark().bytes == len(BIG)
    assert await parted.fetch(job_id) == BIG
    digest = await parted.digest(job_id)
    assert digest == Digest(len(BIG), sha256_hex(BIG), 1, intact=True)
    head = await parted.head(job_id)
    assert head is not None and (head.etag, head.sha256) == (written.etag, sha256_hex(BIG))


async def test_a_stream_that_is_not_the_announced_log_writes_nothing(
    parted: ArchiveStore, job_id: int
) -> None:
    """Bytes that changed under the upload: refused before the parts are joined, and the
    unfinished upload's parts dropped."""
    other = BIG.replace(b"build", b"BUILD", 1)
    with pytest.raises(StreamMismatch):
        await parted.put_stream(job_id, chunks(other), announced(BIG), if_match=None)
    with pytest.raises(StreamMismatch):
        await parted.put_stream(job_id, chunks(b"short\n"), announced(b"shirt\n"), if_match=None)
    assert await parted.head(job_id) is None
    uploads = await parted.client.list_multipart_uploads(
        Bucket=parted.bucket, Prefix=parted.key(job_id)
    )
    assert not uploads.get("Uploads")


async def test_a_multipart_upload_is_conditional_like_a_put(
    parted: ArchiveStore, job_id: int
) -> None:
    """No creating over an object, no replacing one that changed since it was read."""
    first = await parted.put(job_id, b"one\n", version=1, parts=1, if_match=None)
    with pytest.raises(ArchiveConflict):
        await parted.put_stream(job_id, chunks(BIG), announced(BIG, 2), if_match=None)
    replaced = await parted.put_stream(job_id, chunks(BIG), announced(BIG, 2), if_match=first.etag)
    with pytest.raises(ArchiveConflict):
        await parted.put_stream(job_id, chunks(BIG), announced(BIG, 3), if_match=first.etag)
    head = await parted.head(job_id)
    assert head is not None and (head.etag, head.version) == (replaced.etag, 2)


async def test_a_log_within_a_part_is_one_put_with_its_checksum(
    parted: ArchiveStore, job_id: int
) -> None:
    written = await parted.put_stream(job_id, chunks(BODY, 3), announced(BODY), if_match=None)
    assert "-" not in written.etag
    got = await parted.client.head_object(
        Bucket=parted.bucket, Key=parted.key(job_id), ChecksumMode="ENABLED"
    )
    assert got.get("ChecksumSHA256") == base64.b64encode(hashlib.sha256(BODY).digest()).decode()
