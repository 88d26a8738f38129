"""Workflow task dispatch alone: how long tasks wait between scheduled and started.

A probe with LogWorkflow's shape and none of its work: each run does a local activity at
its start, waits for a signal (the final part), sleeps a quiet period, then a local
activity, a regular activity and two more local activities, all no-ops. Runs start at
`--rate` a second and get their signal `--job-s` later, so about rate x job-s are open at
once, as in bench/capacity.py. The Temporal dev server is started as `travis-logs dev`
starts it (workers/devstack.py) and the worker is built with the production worker's
options (workers/temporal_worker.py), each changed by the variant under test.

Variants take turns in one run (each on a fresh server), and what is compared is the
schedule -> start wait of workflow tasks from the recorded histories, by what made the
task and by its queue (normal, or the worker's sticky queue).

    .venv/bin/python bench/dispatch.py --variant default: --variant p1:dev_temporal_partitions=1

A variant's keys are Settings fields, plus `memory=1` (no database file) and
`pragma=NAME=VALUE` (one more `--sqlite-pragma`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import VersioningBehavior
from temporalio.worker import Worker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.budget import HistoryStamps, read_history
from tests.helpers import free_port
from travis_logs.settings import Settings
from workers.devstack import temporal_spec, wait_for_temporal
from workers.temporal_worker import LogWorker, deployment_version, worker_options

QUIET = timedelta(seconds=2)


@activity.defn
async def probe_step(step: int) -> int:
    return step


@workflow.defn(sandboxed=False, versioning_behavior=VersioningBehavior.PINNED)
class ProbeWorkflow:
    """LogWorkflow's commands without its work."""

    def __init__(self) -> None:
        self._final = False

    @workflow.signal
    def final(self) -> None:
        self._final = True

    @workflow.run
    async def run(self) -> None:
        await self._local(0)
        await workflow.wait_condition(lambda: self._final)
        await workflow.sleep(QUIET)
        await self._local(1)
        await workflow.execute_activity(probe_step, 2, start_to_close_timeout=timedelta(seconds=60))
        await self._local(3)
        await self._local(4)

    async def _local(self, step: int) -> None:
        await workflow.execute_local_activity(
            probe_step, step, start_to_close_timeout=timedelta(seconds=60)
        )


@asynccontextmanager
async def server(settings: Settings, memory: bool, pragma: str) -> AsyncIterator[Client]:
    """The dev server with devstack's flags (without its database file when `memory`)."""
    with tempfile.TemporaryDirectory(prefix="dispatch-") as tmp:
        argv = temporal_spec(settings, Path(tmp)).argv
        if memory:
            at = argv.index("--db-filename")
            del argv[at : at + 2]
        if pragma:
            argv += ["--sqlite-pragma", pragma]
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        try:
            yield await wait_for_temporal(settings)
        finally:
            process.terminate()
            await process.wait()


def worker(client: Client, settings: Settings) -> Worker:
    options: dict[str, Any] = {
        **worker_options(settings),
        "workflows": [ProbeWorkflow],
        "activities": [probe_step],
    }
    return LogWorker(client, deployment_version(settings), **options)


async def drive(client: Client, queue: str, rate: float, job_s: float, run_s: float) -> list[str]:
    """Start runs at `rate`/s for `run_s`, signal each `job_s` after its start; their ids."""
    ids: list[str] = []
    pending: set[asyncio.Task[None]] = set()

    async def one(workflow_id: str) -> None:
        handle = await client.start_workflow(ProbeWorkflow.run, id=workflow_id, task_queue=queue)
        await asyncio.sleep(job_s)
        await handle.signal(ProbeWorkflow.final)
        await handle.result()

    loop = asyncio.get_running_loop()
    start = loop.time()
    n = 0
    while (due := start + n / rate) < start + run_s:
        await asyncio.sleep(max(0, due - loop.time()))
        ids.append(f"probe-{uuid.uuid4().hex[:12]}")
        task = asyncio.create_task(one(ids[-1]))
        pending.add(task)
        task.add_done_callback(pending.discard)
        n += 1
    await asyncio.wait_for(asyncio.gather(*pending), job_s + 120)
    return ids


async def variant(name: str, overrides: dict[str, str], args: argparse.Namespace) -> None:
    memory = overrides.pop("memory", "0") == "1"
    pragma = overrides.pop("pragma", "")
    base = Settings(_env_file=None)
    settings = base.model_copy(
        update={
            "temporal_address": f"127.0.0.1:{free_port()}",
            "dev_temporal_ui_port": free_port(),
            "temporal_task_queue": f"dispatch-{uuid.uuid4().hex[:6]}",
        }
    )
    settings = Settings.model_validate({**settings.model_dump(), **overrides})
    started = time.monotonic()
    async with server(settings, memory, pragma) as client, worker(client, settings):
        ids = await drive(client, settings.temporal_task_queue, args.rate, args.job_s, args.run_s)
        took = time.monotonic() - started
        gate = asyncio.Semaphore(8)

        async def history(workflow_id: str) -> HistoryStamps:
            async with gate:
                return read_history(
                    (await client.get_workflow_handle(workflow_id).fetch_history()).events
                )

        found = await asyncio.gather(*(history(i) for i in ids))
    waits: defaultdict[tuple[str, str], list[float]] = defaultdict(list)
    for stamps in found:
        for wait in stamps.waits:
            waits[(wait.trigger, "sticky" if wait.sticky else "normal")].append(wait.seconds)
    print(f"[{name}] {len(ids)} runs in {took:.0f} s; workflow task scheduled -> started (s):")
    for (cause, queue), values in sorted(waits.items()):
        print(f"    {cause:9s} {queue:7s} {_spread(values)}  >1 s: {sum(v > 1 for v in values)}")


def _spread(values: list[float]) -> str:
    ordered = sorted(values)
    n = len(ordered)
    share = sum(v <= 0.1 for v in ordered) / n
    p50, p99 = ordered[n // 2], ordered[min(n - 1, int(n * 0.99))]
    return f"p50 {p50:6.3f} p99 {p99:6.3f} max {ordered[-1]:6.3f} <=0.1 s {share:4.0%} (n={n})"


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    name, _, pairs = text.partition(":")
    return name, dict(pair.split("=", 1) for pair in pairs.split(",") if pair)


async def main(args: argparse.Namespace) -> None:
    variants = [parse_variant(v) for v in args.variant] or [("default", {})]
    print(
        f"dispatch probe: {args.rate:g} runs/s for {args.run_s:g} s, signalled after "
        f"{args.job_s:g} s, quiet {QUIET.total_seconds():g} s; rounds {args.rounds}"
    )
    for _ in range(args.rounds):
        for name, overrides in variants:
            await variant(name, dict(overrides), args)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=10, help="runs started per second (10)")
    parser.add_argument("--job-s", type=float, default=10, help="start -> signal, s (10)")
    parser.add_argument("--run-s", type=float, default=30, help="seconds of starts (30)")
    parser.add_argument("--rounds", type=int, default=1, help="turns of all variants (1)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME:KEY=VALUE,...")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
