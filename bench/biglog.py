"""Worker memory while one big log is aggregated, archived and verified: RSS idle, then at
its peak in each step, and the most text the database held for the log.

On a stack of its own (database, Temporal dev server, moto S3 in its own process), one job
streams a log of `--mb` MiB (realistic output from the simulator, in 64 KiB parts) through
the ingest's own path (PartIntake: stored and signalled in batches), then its final part.
`travis-logs worker`, a subprocess, aggregates, uploads, verifies and purges it; its RSS is
read from /proc every 20 ms, and its peak (VmHWM, reset once the worker is idle) from the
kernel, which misses nothing between samples. Printed: the idle RSS, the peak in each step
(aggregate: final part to the upload's start; archive: upload and index; verify), the ratio
of the peak to idle (target: at most 2.0), and the most bytes of text the database held for
the log (its content, its stored parts, both at once).

Each size runs twice: with glibc's allocator as deployed, and with its mmap threshold fixed
(MALLOC_MMAP_THRESHOLD_=131072), which hands every large block back to the kernel when it
is freed. The first is the worker's real peak; the second shows each step's own memory,
which the first hides when a step reuses what an earlier one freed but glibc kept.

The log streams against the size limit (LOGS_MAX_BYTES, 64 MiB by default): 256 MiB by
default, `--mb 1024` for the 1 GB stream.

    .venv/bin/python bench/biglog.py
    .venv/bin/python bench/biglog.py --mb 1024
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aioboto3
import asyncpg
from temporalio.testing import WorkflowEnvironment

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.capacity import database, rss_mib
from bench.memory import NoPusher, wait_idle, worker
from ingest.intake import PartIntake, assemble
from tests.helpers import free_port
from travis_logs.binaries import executable
from travis_logs.checks import wait_for_port
from travis_logs.migrate import migrate
from travis_logs.parts import LogPart, clean
from travis_logs.settings import Settings
from travis_logs.simulator.content import ContentOptions, job_output
from workers.devstack import register_search_attributes

MIB = 1 << 20
PART_CHARS = 64 * 1024
BATCH = 16  # parts per intake call: 1 MiB, as an AMQP batch of large parts
BUCKET = "travis-logs-biglog"
TARGET_RATIO = 2.0
_HELD = """
SELECT coalesce(octet_length(l.content), 0) AS content, l.archiving,
       (SELECT coalesce(sum(octet_length(p.content)), 0) FROM log_parts p
        WHERE p.log_id = l.id) AS parts
FROM logs l WHERE l.job_id = $1
"""
_DONE = """
SELECT extract(epoch FROM archived_at)::float8 AS archived,
       extract(epoch FROM verified_at)::float8 AS verified, archive_size
FROM logs WHERE job_id = $1 AND purged_at IS NOT NULL
"""


@dataclass
class Held:
    """The most text the database held for the log, and when its upload started."""

    content: int = 0
    parts: int = 0
    both: int = 0
    archiving_at: float | None = None


@dataclass
class Samples:
    rss: list[tuple[float, float]] = field(default_factory=list)  # (time, MiB)

    def peak(self, start: float, end: float) -> float:
        return max((mib for at, mib in self.rss if start <= at <= end), default=0.0)


def output_block(seed: int) -> str:
    """About 4 MiB of a simulated job's output, cleaned as the ingest cleans parts."""
    options = ContentOptions(log_bytes=4 * MIB)
    return clean(b"".join(w.data for w in job_output(random.Random(seed), options)))


def log_parts(job_id: int, size: int) -> Iterator[LogPart]:
    """Parts of realistic output until `size` bytes, then the final part."""
    block, at, sent, number = output_block(job_id), 0, 0, 0
    while sent < size:
        text = block[at : at + PART_CHARS] or block[:PART_CHARS]
        at = (at + PART_CHARS) % len(block)
        yield LogPart(job_id, number, text)
        sent += len(text.encode())
        number += 1
    yield LogPart(job_id, number, "Done. Your build exited with 0.\n", final=True)


async def stream(intake: PartIntake, job_id: int, size: int) -> None:
    batch: list[LogPart] = []
    for part in log_parts(job_id, size):
        batch.append(part)
        if len(batch) == BATCH or part.final:
            await intake.accept(batch, patient=True)
            batch = []


def reset_peak(pid: int) -> None:
    """VmHWM back to the current RSS (Linux: 5 to clear_refs, allowed on one's own child)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def sample_rss(pid: int, samples: Samples) -> None:
    while True:
        samples.rss.append((time.time(), rss_mib([pid])))
        await asyncio.sleep(0.02)


async def sample_held(pool: asyncpg.Pool, job_id: int, held: Held) -> None:
    while True:
        row = await pool.fetchrow(_HELD, job_id)
        if row is not None:
            held.content = max(held.content, row["content"])
            held.parts = max(held.parts, row["parts"])
            held.both = max(held.both, row["content"] + row["parts"])
            if row["archiving"] and held.archiving_at is None:
                held.archiving_at = time.time()
        await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def moto() -> AsyncIterator[str]:
    """moto's S3 in its own process (its memory is not the worker's), with the bucket."""
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        executable("moto_server"), "-H", "127.0.0.1", "-p", str(port),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    try:
        await wait_for_port("127.0.0.1", port, "moto_server")
        session = aioboto3.Session(aws_access_key_id="bench", aws_secret_access_key="bench")
        async with session.client("s3", endpoint_url=endpoint, region_name="us-east-1") as s3:
            await s3.create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.terminate()
        await server.wait()


async def wait_done(pool: asyncpg.Pool, job_id: int, timeout_s: float) -> asyncpg.Record:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        row = await pool.fetchrow(_DONE, job_id)
        if row is not None:
            return row
        await asyncio.sleep(0.2)
    raise TimeoutError(f"job {job_id}: not purged within {timeout_s:.0f} s")


@dataclass(frozen=True)
class Run:
    size: int
    idle: float
    kernel_peak: float
    aggregate: float
    archive: float
    verify: float
    held: Held
    seconds: dict[str, float]


# Large blocks always mmapped, so freed ones leave the RSS at once (glibc's mallopt(3)).
RETURNING = {"MALLOC_MMAP_THRESHOLD_": "131072"}


async def run(base: Settings, size: int, allocator: dict[str, str]) -> Run:
    name = f"biglog_{uuid.uuid4().hex[:8]}"
    dsn = str(base.database_url).rsplit("/", 1)[0] + f"/{name}"
    async with (
        database(base, name),
        await WorkflowEnvironment.start_local(
            dev_server_existing_path=executable("temporal")
        ) as temporal,
        moto() as endpoint,
    ):
        await migrate(dsn)
        await register_search_attributes(temporal.client)
        address = temporal.client.service_client.config.target_host
        # The quiet period is the starter's setting (the workflow's input): short here.
        settings = base.model_copy(
            update={
                "temporal_address": address,
                "temporal_task_queue": f"biglog-{name}",
                "logs_quiet_period_s": 1,
            }
        )
        env = {
            **os.environ,
            "DATABASE_URL": dsn,
            "TEMPORAL_ADDRESS": address,
            "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
            "S3_ENDPOINT_URL": endpoint,
            "S3_BUCKET": BUCKET,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "LOGS_QUIET_PERIOD_S": "1",
            **allocator,
        }
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        assert pool is not None
        samples, held = Samples(), Held()
        job_id = random.randrange(10**12, 2 * 10**12)
        try:
            async with worker(env) as pid:
                await wait_idle(pid)
                idle = rss_mib([pid])
                reset_peak(pid)
                samplers = [
                    asyncio.create_task(sample_rss(pid, samples)),
                    asyncio.create_task(sample_held(pool, job_id, held)),
                ]
                started = time.time()
                await stream(
                    assemble(pool, temporal.client, settings, NoPusher()).parts, job_id, size
                )
                final = time.time()
                done = await wait_done(pool, job_id, timeout_s=600 + size / MIB)
                kernel_peak = peak_mib(pid)
                for task in samplers:
                    task.cancel()
        finally:
            await pool.close()
    upload = held.archiving_at or final
    return Run(
        size=done["archive_size"],
        idle=idle,
        kernel_peak=kernel_peak,
        aggregate=samples.peak(final, upload),
        archive=samples.peak(upload, done["archived"]),
        verify=samples.peak(done["archived"], done["verified"]),
        held=held,
        seconds={
            "stream": final - started,
            "aggregate": upload - final,
            "archive": done["archived"] - upload,
            "verify": done["verified"] - done["archived"],
        },
    )


def report(result: Run, limit: int | None) -> None:
    def ratio(mib: float) -> str:
        return f"{mib:6.0f} MiB ({mib / result.idle:.2f}x)"

    held = result.held
    verdict = "meets" if result.kernel_peak / result.idle <= TARGET_RATIO else "misses"
    print(f"  archived log: {result.size / MIB:.1f} MiB")
    print(f"  worker RSS idle {result.idle:.0f} MiB; peak while")
    print(f"    aggregating          {ratio(result.aggregate)}")
    print(f"    uploading, indexing  {ratio(result.archive)}")
    print(f"    verifying            {ratio(result.verify)}")
    print(
        f"  peak of the whole run (kernel's VmHWM) {ratio(result.kernel_peak)}:"
        f" {verdict} the {TARGET_RATIO:.1f}x target"
    )
    print(
        f"  database held at most: content {held.content / MIB:.1f} MiB, stored parts"
        f" {held.parts / MIB:.1f} MiB, both {held.both / MIB:.1f} MiB"
        + (f" (limit {limit / MIB:.0f} MiB)" if limit else " (no size limit configured)")
    )
    print("  seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items()))


async def main(args: argparse.Namespace) -> None:
    base = Settings()
    limit = base.logs_max_bytes
    mb = args.mb or 256
    print(f"biglog bench: one {mb} MiB log, against LOGS_MAX_BYTES {limit / MIB:.0f} MiB")
    for label, allocator in (("glibc as deployed", {}), ("freed memory returned", RETURNING)):
        print(f"- worker with {label} {' '.join(f'{k}={v}' for k, v in allocator.items())}")
        report(await run(base, mb * MIB, allocator), limit)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=int, help="MiB the job streams (default 256)")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
