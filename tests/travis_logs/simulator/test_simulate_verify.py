"""`travis-logs verify-archives`: archives in S3 (moto) compared byte for byte with a manifest."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import aioboto3
import pytest

from travis_logs.settings import Settings
from travis_logs.simulator.job import JobOptions, build_job
from travis_logs.simulator.manifest import Manifest
from workers import verify_archives

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def s3_settings(defaults: Settings, s3_endpoint: str, s3_bucket: str) -> Settings:
    return defaults.model_copy(update={"s3_endpoint_url": s3_endpoint, "s3_bucket": s3_bucket})


async def put_archive(settings: Settings, job_id: int, content: bytes) -> None:
    async with aioboto3.Session().client(
        "s3", endpoint_url=settings.s3_endpoint_url, region_name=settings.aws_region
    ) as s3:
        await s3.put_object(Bucket=settings.s3_bucket, Key=f"jobs/{job_id}/log.txt", Body=content)


def altered(log: bytes) -> bytes:
    """The same size, one byte different: only the checksum can tell."""
    middle = len(log) // 2
    return log[:middle] + bytes([log[middle] ^ 0x01]) + log[middle + 1 :]


async def test_altered_and_missing_archives_are_reported(
    s3_settings: Settings, new_job_id, tmp_path: Path
):
    """An exact archive matches; one flipped bit is `different`, no object is `missing`; exit 1."""
    ok_id, bad_id, gone_id = next(new_job_id), next(new_job_id), next(new_job_id)
    jobs = {
        job_id: build_job(job_id, 5, JobOptions(parts=8)) for job_id in (ok_id, bad_id, gone_id)
    }
    await put_archive(s3_settings, ok_id, jobs[ok_id].expected_log)
    await put_archive(s3_settings, bad_id, altered(jobs[bad_id].expected_log))
    path = tmp_path / "manifest.json"
    Manifest(5, tuple(job.record for job in jobs.values())).write(path)
    env = os.environ | {
        "S3_ENDPOINT_URL": str(s3_settings.s3_endpoint_url),
        "S3_BUCKET": s3_settings.s3_bucket,
        "COLUMNS": "200",
    }
    argv = [sys.executable, "-m", "workers.cli", "verify-archives", str(path)]
    done = await asyncio.to_thread(
        subprocess.run, argv, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "matched 1, missing 1, different 1" in done.stdout
    assert f"missing: {gone_id}" in done.stdout
    assert f"different: {bad_id}" in done.stdout


async def test_waits_for_archives_to_appear(s3_settings: Settings, new_job_id):
    """With a wait, an archive written a moment later still counts as matched."""
    job = build_job(next(new_job_id), 6, JobOptions(parts=5))
    manifest = Manifest(6, (job.record,))

    async def archive_later() -> None:
        await asyncio.sleep(0.5)
        await put_archive(s3_settings, job.job_id, job.expected_log)

    writer = asyncio.create_task(archive_later())
    report = await verify_archives.run(s3_settings, manifest, wait_s=10)
    await writer
    assert report.ok and report.matched == (job.job_id,)


async def test_without_wait_a_missing_archive_fails_at_once(s3_settings: Settings, new_job_id):
    """Without a wait, verification reports what is there now."""
    job = build_job(next(new_job_id), 7, JobOptions(parts=3))
    report = await verify_archives.run(s3_settings, Manifest(7, (job.record,)))
    assert not report.ok and report.missing == (job.job_id,)
