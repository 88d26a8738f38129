"""archive_log, verify_archive and the archive store against moto S3 and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import asyncpg
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.aggregate import AggregateActivities
from activities.archive import ArchiveActivities
from activities.models import AggregateInput, ArchiveInput, VerifyInput
from tests.helpers import joined, log_row, open_store, store_parts
from tests.workflows.proxy import BlackholeProxy
from travis_logs.archive_store import CONTENT_TYPE, ArchiveConflict, ArchiveStore, sha256_hex
from travis_logs.errors import S3Timeout
from travis_logs.settings import Settings
from travis_logs.transfer import MIN_PART_BYTES, TransferLimits


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


def big_parts(count: int = 12) -> dict[int, str]:
    """About 1 MiB a part with multibyte characters and fold markers: 12 MiB in all."""
    line = "héllo ✓ output of the build, line {}\n"
    return {
        n: f"travis_fold:start:step{n}\r\x1b[0K"
        + "".join(line.format(i) for i in range(26_000))
        + f"travis_fold:end:step{n}\r\x1b[0K"
        for n in range(count)
    }


async def test_a_log_larger_than_a_part_is_archived_in_parts_verified_and_indexed(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """Streamed from the database into a multipart upload: byte-exact, verified by reading
    it back, and indexed from the same stream (parts and folds where the text has them)."""
    parted = ArchiveStore(store.client, store.bucket, TransferLimits(part_bytes=MIN_PART_BYTES))
    parts = big_parts()
    await store_parts(pool, job_id, parts, final=len(parts) - 1)
    await ActivityEnvironment().run(
        AggregateActivities(pool, parted).aggregate_log, AggregateInput(job_id)
    )
    env = ActivityEnvironment()
    archive = ArchiveActivities(pool, parted)
    written = await env.run(archive.archive_log, ArchiveInput(job_id))
    body = joined(parts).encode()
    assert written.size == len(body) > 2 * MIN_PART_BYTES and written.uploaded
    head = await parted.head(job_id)
    assert head is not None and head.etag.strip('"').endswith("-3")
    assert await parted.fetch(job_id) == body
    check = VerifyInput(job_id, written.content_version, written.size, written.sha256)
    verified = await env.run(archive.verify_archive, check)
    assert verified.verified and verified.sha256 == sha256_hex(body)
    assert verified.index_rebuilt == ""  # the round's index is this log's
    index = json.loads(await row_index(pool, job_id) or b"null")  # small: kept in the row
    assert index["size"] == len(body) and index["parts"]["number"] == list(range(12))
    assert [f["name"] for f in index["folds"]] == [f"step{n}" for n in range(12)]
    assert all(body[f["end_offset"] :].startswith(b"travis_fold:end:") for f in index["folds"])


async def row_index(pool: asyncpg.Pool, job_id: int) -> bytes | None:
    got: bytes | None = await pool.fetchval(
        "SELECT archive_index FROM logs WHERE job_id = $1", job_id
    )
    return got


def in_s3(pool: asyncpg.Pool, store: ArchiveStore) -> ArchiveActivities:
    """Archive activities that keep every index in S3, as they do a large log's."""
    return ArchiveActivities(pool, store, row_index_max_bytes=0)


async def test_a_small_log_s_index_is_kept_in_its_row_and_s3_holds_the_log_alone(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """Archiving a small log costs S3 one PUT (and verify one GET): its index goes in the
    statement that records the archive, and stays with the row."""
    text = "travis_fold:start:install\r\x1b[0K$ make\nok\ntravis_fold:end:install\r\x1b[0K\n"
    await aggregated(pool, store, job_id, text)
    env = ActivityEnvironment()
    archive = ArchiveActivities(pool, store)
    written = await env.run(archive.archive_log, ArchiveInput(job_id))
    assert written.uploaded and written.index_checked
    listed = await store.client.list_objects_v2(Bucket=store.bucket, Prefix=f"jobs/{job_id}/")
    assert [o["Key"] for o in listed.get("Contents", [])] == [store.key(job_id)]
    index = json.loads(await row_index(pool, job_id) or b"null")
    assert index["size"] == written.size and [f["name"] for f in index["folds"]] == ["install"]
    check = VerifyInput(
        job_id, written.content_version, written.size, written.sha256, index_checked=False
    )
    verified = await env.run(archive.verify_archive, check)  # finds it in the row
    assert verified.verified and verified.index_rebuilt == ""


async def test_a_log_re_archived_with_a_large_index_has_it_in_s3_and_none_in_its_row(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """The row's index always describes the recorded archive: one written to S3 instead
    takes the row's away, so a reader does not take the older one."""
    await aggregated(pool, store, job_id, "one\n")
    env = ActivityEnvironment()
    await env.run(ArchiveActivities(pool, store).archive_log, ArchiveInput(job_id))
    assert await row_index(pool, job_id) is not None
    written = await env.run(in_s3(pool, store).archive_log, ArchiveInput(job_id, rewrite=True))
    assert await row_index(pool, job_id) is None
    good, version = await index_state(store, job_id)
    assert good is not None and version == written.content_version


async def index_state(store: ArchiveStore, job_id: int) -> tuple[bytes | None, int | None]:
    got = await store.read_index(job_id)
    return (got.body, got.version) if got is not None else (None, None)


@pytest.mark.parametrize("damage", ["missing", "corrupted", "stale", "other text"])
async def test_verify_catches_an_index_that_is_not_the_logs_and_rebuilds_it(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int, damage: str
) -> None:
    """The index beside a verified log is the one of its version and text: a missing,
    damaged or stale one is rebuilt from the bytes read back, the same as the round's."""
    text = "travis_fold:start:install\r\x1b[0K$ make\nok\ntravis_fold:end:install\r\x1b[0K\n"
    await aggregated(pool, store, job_id, text)
    env = ActivityEnvironment()
    archive = in_s3(pool, store)
    written = await env.run(archive.archive_log, ArchiveInput(job_id))
    good, version = await index_state(store, job_id)
    assert good is not None and version == written.content_version
    key = store.index_key(job_id)
    head = await store.client.head_object(Bucket=store.bucket, Key=key)
    if damage == "missing":
        await store.delete_index(job_id)
    elif damage == "corrupted":  # other bytes under the original metadata
        await store.client.put_object(
            Bucket=store.bucket, Key=key, Body=good[:-9] + b"garbage}", Metadata=head["Metadata"]
        )
    elif damage == "stale":
        await store.put_index(job_id, good, version=version - 1, log_sha256=written.sha256)
    else:
        await store.put_index(job_id, good, version=version, log_sha256=sha256_hex(b"other"))
    check = VerifyInput(job_id, written.content_version, written.size, written.sha256)
    verified = await env.run(archive.verify_archive, check)
    assert verified.verified and verified.index_rebuilt
    assert await index_state(store, job_id) == (good, version)
    assert (await env.run(archive.verify_archive, check)).index_rebuilt == ""


async def test_a_failed_verify_leaves_the_index_alone(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """No index is built from bytes that are not the log."""
    await aggregated(pool, store, job_id, "abc\n")
    env = ActivityEnvironment()
    archive = in_s3(pool, store)
    written = await env.run(archive.archive_log, ArchiveInput(job_id))
    await store.delete_index(job_id)
    head = await store.client.head_object(Bucket=store.bucket, Key=store.key(job_id))
    await store.client.put_object(
        Bucket=store.bucket, Key=store.key(job_id), Body=b"abd\n", Metadata=head["Metadata"]
    )
    check = VerifyInput(job_id, written.content_version, written.size, written.sha256)
    damaged = await env.run(archive.verify_archive, check)
    assert not damaged.verified and damaged.index_rebuilt == ""
    assert await store.read_index(job_id) is None


async def test_the_round_vouches_for_its_index_and_a_retry_puts_a_lost_one_back(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """An upload writes the index it read the log for: verify then reads only the log (one
    S3 request less per lifecycle). A retry that finds the log already written reads the
    index, and writes it again when it is gone."""
    await aggregated(pool, store, job_id, "one\ntwo\n")
    env = ActivityEnvironment()
    archive = in_s3(pool, store)
    written = await env.run(archive.archive_log, ArchiveInput(job_id))
    assert written.uploaded and written.index_checked
    await store.delete_index(job_id)
    vouched = VerifyInput(
        job_id, written.content_version, written.size, written.sha256, index_checked=True
    )
    verified = await env.run(archive.verify_archive, vouched)
    assert verified.verified and verified.index_rebuilt == ""  # the index was not read
    assert await store.fetch_index(job_id) is None
    again = await env.run(archive.archive_log, ArchiveInput(job_id))
    assert not again.uploaded and again.index_checked
    good, version = await index_state(store, job_id)
    assert good is not None and version == written.content_version
