"""The embedded S3 of `travis-logs dev` keeps its objects across restarts and crashes."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.helpers import free_port
from travis_logs.archive_store import Announced, ArchiveConflict, ArchiveStore, sha256_hex
from travis_logs.checks import wait_for_port
from travis_logs.s3 import s3_client
from travis_logs.settings import Settings
from travis_logs.transfer import MIN_PART_BYTES, TransferLimits

pytestmark = pytest.mark.services  # the embedded S3 server's process

BUCKET = "travis-logs"


@asynccontextmanager
async def s3_server(
    data_dir: Path, port: int, stop: signal.Signals = signal.SIGTERM
) -> AsyncIterator[Callable[[], ArchiveStore]]:
    """`travis-logs s3-server` on `port`; stopped with `stop` (SIGKILL: a crash) at the end."""
    process = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "workers.cli", "s3-server", "--data-dir", str(data_dir)],
        env={"DEV_S3_PORT": str(port), "PATH": ""},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await wait_for_port("127.0.0.1", port, "DEV_S3_PORT")
        settings = Settings(_env_file=None, s3_endpoint_url=f"http://127.0.0.1:{port}")
        async with s3_client(settings) as s3:
            yield lambda: ArchiveStore(s3, BUCKET)
    finally:
        process.send_signal(stop)
        await process.wait()


async def test_archive_outlives_a_crash_of_the_server(tmp_path: Path) -> None:
    """An object acknowledged before a SIGKILL reads back intact, with its metadata."""
    body = "✊ archived log\n".encode() * 1000
    port = free_port()
    async with s3_server(tmp_path, port, stop=signal.SIGKILL) as store:
        await store().client.create_bucket(Bucket=BUCKET)
        written = await store().put(1, body, version=3, parts=7, if_match=None)
    async with s3_server(tmp_path, port) as store:
        digest = await store().digest(1)
        head = await store().head(1)
        fetched = await store().fetch(1)
    assert fetched == body
    assert digest is not None and digest.intact and digest.version == 3
    assert head is not None and head.etag == written.etag and head.sha256 == written.sha256


async def test_deleted_and_replaced_objects_stay_so_after_a_restart(tmp_path: Path) -> None:
    port = free_port()
    async with s3_server(tmp_path, port) as store:
        await store().client.create_bucket(Bucket=BUCKET)
        first = await store().put(1, b"one\n", version=1, parts=1, if_match=None)
        await store().put(1, b"one, then more\n", version=2, parts=2, if_match=first.etag)
        await store().put(2, b"two\n", version=1, parts=1, if_match=None)
        await store().delete(2)
    async with s3_server(tmp_path, port) as store:
        assert await store().fetch(1) == b"one, then more\n"
        assert await store().fetch(2) is None
        head = await store().head(1)
        assert head is not None and head.version == 2
        # Conditional writes still hold after a restart: the object exists, so this is refused.
        with pytest.raises(ArchiveConflict):
            await store().put(1, b"stale\n", version=1, parts=1, if_match=None)


async def test_a_log_uploaded_in_parts_reads_back_intact_after_a_restart(tmp_path: Path) -> None:
    """S3 keeps a checksum of the parts' checksums for it, never the object's: the restored
    object must not claim that one as its SHA-256."""
    body = "✊ a large archived log\n".encode() * 500_000  # 12.5 MB: three 5 MiB parts
    what = Announced(len(body), sha256_hex(body), version=4, parts=9)

    async def chunks() -> AsyncIterator[bytes]:
        for at in range(0, len(body), 1 << 20):
            yield body[at : at + (1 << 20)]

    port = free_port()
    limits = TransferLimits(part_bytes=MIN_PART_BYTES)
    async with s3_server(tmp_path, port) as store:
        await store().client.create_bucket(Bucket=BUCKET)
        parted = ArchiveStore(store().client, BUCKET, limits)
        await parted.put_stream(1, chunks(), what, if_match=None)
    async with s3_server(tmp_path, port) as store:
        digest = await store().digest(1)
        fetched = await store().fetch(1)
    assert digest is not None and digest.intact and fetched == body
    assert (digest.size, digest.sha256, digest.version) == (len(body), what.sha256, 4)
