"""Compare archived logs with a simulation manifest, byte for byte (size and SHA-256)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from travis_logs.archive_store import Digest
from travis_logs.simulator.manifest import JobRecord, Manifest

# job id -> size and SHA-256 of the archived object as read back, None when there is none
Inspect = Callable[[int], Awaitable[Digest | None]]


@dataclass(frozen=True)
class Difference:
    """An archive that exists but is not the expected log."""

    job_id: int
    expected_bytes: int
    actual_bytes: int
    expected_sha256: str
    actual_sha256: str


@dataclass(frozen=True)
class VerifyReport:
    """Every job of the manifest, in exactly one of three lists."""

    matched: tuple[int, ...]
    missing: tuple[int, ...]
    different: tuple[Difference, ...]

    @property
    def ok(self) -> bool:
        return not self.missing and not self.different


async def verify_until(
    manifest: Manifest,
    inspect: Inspect,
    wait_s: float,
    interval_s: float = 1.0,
    concurrency: int = 16,
) -> VerifyReport:
    """Check again the jobs not yet matched until all match or `wait_s` has passed."""
    deadline = time.monotonic() + wait_s
    matched: tuple[int, ...] = ()
    pending = manifest.jobs
    while True:
        report = await _check(pending, inspect, concurrency)
        matched += report.matched
        done = set(report.matched)
        pending = tuple(job for job in pending if job.job_id not in done)
        if not pending or time.monotonic() + interval_s > deadline:
            return VerifyReport(tuple(sorted(matched)), report.missing, report.different)
        await asyncio.sleep(interval_s)


async def _check(jobs: Iterable[JobRecord], inspect: Inspect, concurrency: int) -> VerifyReport:
    slots = asyncio.Semaphore(concurrency)

    async def one(job: JobRecord) -> tuple[JobRecord, Digest | None]:
        async with slots:
            return job, await inspect(job.job_id)

    results = await asyncio.gather(*(one(job) for job in jobs))
    matched, missing, different = [], [], []
    for job, archived in results:
        if archived is None:
            missing.append(job.job_id)
        elif (diff := compare(job, archived)) is not None:
            different.append(diff)
        else:
            matched.append(job.job_id)
    return VerifyReport(tuple(matched), tuple(missing), tuple(different))


def compare(job: JobRecord, archived: Digest) -> Difference | None:
    """None when the archived object is exactly the job's expected log."""
    if archived.intact and archived.size == job.bytes and archived.sha256 == job.sha256:
        return None
    return Difference(job.job_id, job.bytes, archived.size, job.sha256, archived.sha256)
