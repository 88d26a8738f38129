"""archive_log, verify_archive and the archive store against moto S3 and PostgreSQL."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import asyncpg
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.aggregate import AggregateActivities
from activities.archive import ArchiveActivities
from activities.models import AggregateInput, ArchiveInput, VerifyInput
from tests.helpers import log_row, open_store, store_parts
from tests.workflows.proxy import BlackholeProxy
from travis_logs.archive_store import CONTENT_TYPE, ArchiveConflict, ArchiveStore
from travis_logs.errors import S3Timeout
from travis_logs.settings import Settings


async def aggregated(pool: asyncpg.Pool, store: ArchiveStore, job_id: int, text: str) -> None:
    await store_parts(pool, job_id, {0: text}, final=0)
    await ActivityEnvironment().run(
        AggregateActivities(pool, store).aggregate_log, AggregateInput(job_id)
    )


async def test_archive_writes_the_log_with_type_and_checksum_and_heartbeats(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """jobs/<id>/log.txt, text/plain; charset=utf-8, SHA-256 sent; heartbeats while it runs."""
    await aggregated(pool, store, job_id, "héllo\n")
    beats: list[object] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)
    written = await env.run(ArchiveActivities(pool, store).archive_log, ArchiveInput(job_id))
    head = await store.client.head_object(
        Bucket=store.bucket, Key=f"jobs/{job_id}/log.txt", ChecksumMode="ENABLED"
    )
    assert head["ContentType"] == CONTENT_TYPE and head["ContentLength"] == written.size
    assert head.get("ChecksumSHA256")
    assert written.uploaded and beats
    row = await log_row(pool, job_id)
    assert row["archived_at"] is not None and row["archive_sha256"] == written.sha256


async def test_archive_again_uploads_nothing_unless_asked_to_rewrite(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """A retried archive finds its own object and leaves it; a rewrite replaces it."""
    await aggregated(pool, store, job_id, "once\n")
    archive = ArchiveActivities(pool, store)
    env = ActivityEnvironment()
    await env.run(archive.archive_log, ArchiveInput(job_id))
    etag = (await store.head(job_id) or pytest.fail("no object")).etag
    assert not (await env.run(archive.archive_log, ArchiveInput(job_id))).uploaded
    assert (await store.head(job_id) or pytest.fail("no object")).etag == etag
    assert (await env.run(archive.archive_log, ArchiveInput(job_id, rewrite=True))).uploaded


async def test_archive_never_replaces_a_newer_version(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """An older content version (a worker presumed dead, say) cannot overwrite a newer one."""
    await aggregated(pool, store, job_id, "old\n")
    await store.put(job_id, b"newer and fuller\n", version=7, parts=3, if_match=None)
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(
            ArchiveActivities(pool, store).archive_log, ArchiveInput(job_id)
        )
    assert refused.value.type == "ArchiveNewer" and refused.value.non_retryable
    assert await store.fetch(job_id) == b"newer and fuller\n"


async def test_conditional_writes_refuse_a_stale_writer(store: ArchiveStore, job_id: int) -> None:
    """If-None-Match refuses to create over an object; If-Match refuses a changed one."""
    first = await store.put(job_id, b"one\n", version=1, parts=1, if_match=None)
    with pytest.raises(ArchiveConflict):
        await store.put(job_id, b"two\n", version=2, parts=2, if_match=None)
    second = await store.put(job_id, b"two\n", version=2, parts=2, if_match=first.etag)
    with pytest.raises(ArchiveConflict):
        await store.put(job_id, b"stale\n", version=2, parts=2, if_match=first.etag)
    assert second.etag != first.etag and await store.fetch(job_id) == b"two\n"


async def test_verify_reads_the_object_back(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """Verified only when the bytes read back have the archived size and SHA-256."""
    await aggregated(pool, store, job_id, "abc\n")
    env = ActivityEnvironment()
    archive = ArchiveActivities(pool, store)
    written = await env.run(archive.archive_log, ArchiveInput(job_id))
    check = VerifyInput(job_id, written.content_version, written.size, written.sha256)
    assert (await env.run(archive.verify_archive, check)).verified
    head = await store.client.head_object(Bucket=store.bucket, Key=store.key(job_id))
    await store.client.put_object(
        Bucket=store.bucket, Key=store.key(job_id), Body=b"abd\n", Metadata=head["Metadata"]
    )
    damaged = await env.run(archive.verify_archive, check)
    assert not damaged.verified and "SHA-256" in damaged.reason
    assert (await log_row(pool, job_id))["archive_verified"] is False
    await store.delete(job_id)
    missing = await env.run(archive.verify_archive, check)
    assert not missing.verified and missing.reason == "the object is missing"


async def test_a_stalled_upload_stops_heartbeating_and_fails_at_its_deadline(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int, defaults: Settings
) -> None:
    """Against S3 that reads and never answers: no beat repeats old progress, then S3Timeout."""
    await aggregated(pool, store, job_id, "stalled\n")
    swallower = BlackholeProxy()
    port = await swallower.start()
    silent = defaults.model_copy(
        update={"s3_endpoint_url": f"http://127.0.0.1:{port}", "s3_request_timeout_s": 1}
    )
    beats: list[dict[str, object]] = []
    env = ActivityEnvironment()
    # Ten looks at the progress during the stalled request: beats only when it moved.
    env.info = dataclasses.replace(env.info, heartbeat_timeout=timedelta(seconds=0.3))
    env.on_heartbeat = lambda mark: beats.append(mark)
    try:
        async with open_store(silent) as unanswered:
            with pytest.raises(S3Timeout):
                await env.run(ArchiveActivities(pool, unanswered).archive_log, ArchiveInput(job_id))
    finally:
        await swallower.close()
    assert beats and beats[-1]["phase"] == "put"
    assert len({tuple(b.values()) for b in beats}) == len(beats)
    assert (await log_row(pool, job_id))["archived_at"] is None
