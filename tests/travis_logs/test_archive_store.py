"""Reading an archive back only if it is the one recorded when it was verified (moto S3)."""

from __future__ import annotations

import pytest

from travis_logs.archive_store import ArchiveStore, sha256_hex
from travis_logs.errors import ArchiveMismatch, ArchiveMissing

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
