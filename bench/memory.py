"""Worker memory per open log: RSS of `travis-logs worker` before and after N logs open.

Each job gets its first part through the ingest's own path (PartIntake: rows stored, the
signal-with-start sent), so N LogWorkflow runs wait for their final part, cached by the
worker. Once the worker's CPU is idle, its RSS growth over N is the memory per open log.
Runs once per workflow runner (WORKER_WORKFLOW_RUNNER) and prints the projection for
10,000 open logs (target: under 500 MB); with `--cache` below N, the RSS shows what a
bounded sticky cache holds instead (projection then meaningless: evicted logs cost none).

    .venv/bin/python bench/memory.py --jobs 5000 --runner sandboxed,passthrough,unsandboxed
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import asyncpg
from temporalio.testing import WorkflowEnvironment

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.capacity import cpu_s, database, rss_mib
from ingest.intake import PartIntake, assemble
from tests.helpers import free_port
from travis_logs.binaries import executable
from travis_logs.migrate import migrate
from travis_logs.parts import LogPart
from travis_logs.settings import Settings
from workers.devstack import register_search_attributes

BATCH = 500
TARGET_MIB = 500 * 1e6 / 2**20  # 500 MB


class NoPusher:
    def offer(self, parts: Sequence[LogPart]) -> None:
        del parts


@contextlib.asynccontextmanager
async def worker(env: dict[str, str]) -> AsyncIterator[int]:
    """`travis-logs worker` as a subprocess; yields its pid once it polls."""
    with tempfile.TemporaryFile() as out:
        process = await asyncio.create_subprocess_exec(
            executable("travis-logs"), "worker", env=env, stdout=out, stderr=out
        )
        try:
            for _ in range(300):
                out.seek(0)
                if b"worker polling" in out.read():
                    break
                if process.returncode is not None:
                    out.seek(0)
                    raise RuntimeError(f"worker exited:\n{out.read().decode()[-2000:]}")
                await asyncio.sleep(0.1)
            yield process.pid
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 60)


async def wait_idle(pid: int, quiet_cpu_s: float = 0.1, window_s: float = 2.0) -> None:
    """Until the process used less than `quiet_cpu_s` of CPU in `window_s`."""
    while True:
        before = cpu_s([pid])
        await asyncio.sleep(window_s)
        if cpu_s([pid]) - before < quiet_cpu_s:
            return


async def open_logs(intake: PartIntake, jobs: range) -> None:
    """Part 0 of each job, stored and signalled as the ingest does it."""
    for start in range(jobs.start, jobs.stop, BATCH):
        batch = [
            LogPart(j, 0, f"job {j} started\n") for j in range(start, min(start + BATCH, jobs.stop))
        ]
        await intake.accept(batch, patient=True)


async def measure(base: Settings, runner: str, jobs: int, cache: int) -> tuple[float, float]:
    """(RSS MiB before, RSS MiB after `jobs` open logs) of a fresh worker."""
    name = f"memory_{uuid.uuid4().hex[:8]}"
    dsn = str(base.database_url).rsplit("/", 1)[0] + f"/{name}"
    async with (
        database(base, name),
        await WorkflowEnvironment.start_local(
            dev_server_existing_path=executable("temporal")
        ) as temporal,
    ):
        await migrate(dsn)
        await register_search_attributes(temporal.client)
        address = temporal.client.service_client.config.target_host
        settings = base.model_copy(
            update={"temporal_address": address, "temporal_task_queue": f"memory-{name}"}
        )
        env = {
            **os.environ,
            "DATABASE_URL": dsn,
            "TEMPORAL_ADDRESS": address,
            "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
            "S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",  # no archive happens here
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "WORKER_WORKFLOW_RUNNER": runner,
            "WORKER_MAX_CACHED_WORKFLOWS": str(cache),
        }
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
        assert pool is not None
        try:
            async with worker(env) as pid:
                await wait_idle(pid)
                before = rss_mib([pid])
                first = random.randrange(10**12, 2 * 10**12)
                started = time.monotonic()
                await open_logs(
                    assemble(pool, temporal.client, settings, NoPusher()).parts,
                    range(first, first + jobs),
                )
                await wait_idle(pid)
                after = rss_mib([pid])
                print(f"  {runner}: {jobs} logs opened in {time.monotonic() - started:.0f} s")
        finally:
            await pool.close()
    return before, after


async def main(args: argparse.Namespace) -> None:
    base = Settings()
    cache = args.cache or "all"
    print(f"memory bench: {args.jobs} open logs, cache {cache}, runners {', '.join(args.runner)}")
    for runner in args.runner:
        before, after = await measure(base, runner, args.jobs, args.cache or args.jobs + 1000)
        per_kib = (after - before) * 1024 / args.jobs
        projected = before + per_kib * 10_000 / 1024
        verdict = "meets" if projected < TARGET_MIB else "misses"
        print(
            f"{runner:12s} RSS {before:6.0f} -> {after:6.0f} MiB: {per_kib:6.1f} KiB per open log;"
            f" 10,000 open logs ~ {projected:.0f} MiB ({verdict} the 500 MB target)"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=5000, help="open logs (default 5,000)")
    parser.add_argument(
        "--runner", type=lambda s: s.split(","), default=["sandboxed", "passthrough", "unsandboxed"],
        help="WORKER_WORKFLOW_RUNNER values, comma-separated (default: all three)",
    )  # fmt: skip
    parser.add_argument(
        "--cache", type=int, help="WORKER_MAX_CACHED_WORKFLOWS (default: every open log)"
    )
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
