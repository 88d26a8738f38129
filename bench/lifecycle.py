"""Benchmark of the log lifecycle: history size, throughput against a bare workflow, latency.

Starts its own Temporal dev server (in memory), a moto S3 server and a throwaway PostgreSQL
database (dropped at the end), and runs the production worker (`build_worker`) in this
process. It prints:

- history events, workflow tasks and search-attribute upserts per log, for a 10-part and a
  10,000-part log (targets: <= 25 events, the same for both; <= 3 upserts), against the
  bare workflow, and the Temporal Cloud billable actions those histories record
  (bench/billing.py; target <= 6);
- complete lifecycles/s, final part to purged with quiet period 0, against a bare workflow
  of 4 no-op activities on the same server in the same run (target: ratio >= 1.0), and CPU
  per lifecycle of this process (worker, client), the Temporal server and the S3 stand-in,
  also split into the first part and final part to purged (target: worker + Temporal <=
  the bare workflow's);
- the same CPU figures for the floor of one workflow per log (FloorWorkflow: the log run's
  starts and signals, 4 no-op local activities and its one upsert, no work): what the
  lifecycle costs beyond that floor is its work, and the floor's own ratio to the bare
  workflow is as low as the lifecycle's can go while each log is a workflow;
- final part to purged on an idle system (target: <= quiet period + 0.5 s).

Usage: python bench/lifecycle.py [--logs 200] [--concurrency 50] [--events] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

# Run as a script (`make bench`): the repository's bench package is importable too. Not
# again when the workflow sandbox re-imports this module (it forbids Path.resolve).
if not workflow.unsafe.in_sandbox():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

with workflow.unsafe.imports_passed_through():
    import aioboto3
    import asyncpg

    from bench.billing import BillableActions, billable_actions
    from tests.helpers import with_database
    from travis_logs.archive_store import ArchiveStore
    from travis_logs.binaries import executable
    from travis_logs.checks import port_is_free, wait_for_port
    from travis_logs.db import admin_dsn, create_pool
    from travis_logs.migrate import migrate
    from travis_logs.s3 import s3_client
    from travis_logs.settings import Settings
    from travis_logs.temporal import DATA_CONVERTER
    from workers.temporal_worker import build_worker, lifecycle_activities
    from workflows.client import signal_parts, start_delay, start_options
    from workflows.models import (
        LOG_STATE,
        SEARCH_ATTRIBUTES,
        SIGNAL_PARTS,
        LogState,
        PartRef,
        PartsSignal,
        workflow_id,
    )

T = TypeVar("T")
BARE_QUEUE = "bench-bare"
FLOOR_QUEUE = "bench-floor"
TIME_LIMIT_S = 420  # a broken lifecycle fails the benchmark instead of hanging it
PART_TEXT = "x" * 80  # travis-worker's parts are larger; the content size is not what is measured


@activity.defn
async def noop(step: int) -> int:
    return step


@workflow.defn
class BareWorkflow:
    """The baseline: start, 4 no-op activities, complete."""

    @workflow.run
    async def run(self, n: int) -> int:
        for step in range(4):
            await workflow.execute_activity(
                noop, step, start_to_close_timeout=timedelta(seconds=30)
            )
        return n


@workflow.defn(sandboxed=False)
class FloorWorkflow:
    """The floor of one workflow per log: LogWorkflow's happy path with none of its work.
    Started asleep by the first part's signal-with-start with the same start options, woken
    by the final part's; then 4 no-op local activities (aggregate, upload, verify, purge)
    and the one upsert (`LogState` done) in that one workflow task."""

    def __init__(self) -> None:
        self._final = False

    @workflow.signal(name=SIGNAL_PARTS)
    def parts(self, signal: PartsSignal) -> None:
        self._final = self._final or any(ref.final for ref in signal.refs)

    @workflow.run
    async def run(self, n: int) -> int:
        await workflow.wait_condition(lambda: self._final)
        for step in range(4):
            await workflow.execute_local_activity(
                noop, step, start_to_close_timeout=timedelta(seconds=30)
            )
        workflow.upsert_search_attributes([LOG_STATE.value_set(LogState.DONE.value)])
        return n


@dataclass
class Bench:
    client: Client
    settings: Settings
    pool: asyncpg.Pool
    concurrency: int
    next_job: int = 1


def _free_port() -> int:
    port = 19000 + uuid.uuid4().int % 20000
    while not port_is_free(port):
        port += 1
    return port


@asynccontextmanager
async def _database(base: Settings) -> AsyncIterator[str]:
    dsn = with_database(str(base.database_url), f"travis_logs_bench_{uuid.uuid4().hex[:8]}")
    await migrate(dsn)
    try:
        yield dsn
    finally:
        conn = await asyncpg.connect(admin_dsn(dsn))
        await conn.execute(f'DROP DATABASE IF EXISTS "{dsn.rsplit("/", 1)[1]}" WITH (FORCE)')
        await conn.close()


@asynccontextmanager
async def _s3(bucket: str) -> AsyncIterator[str]:
    """moto's S3 in its own process, as S3 is elsewhere in production (not in our GIL)."""
    port = _free_port()
    server = await asyncio.create_subprocess_exec(
        executable("moto_server"),
        "-H",
        "127.0.0.1",
        "-p",
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        await wait_for_port("127.0.0.1", port, "moto_server")
        async with aioboto3.Session().client(
            "s3", endpoint_url=endpoint, region_name="us-east-1"
        ) as s3:
            await s3.create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        server.terminate()
        await server.wait()


@asynccontextmanager
async def services(concurrency: int) -> AsyncIterator[Bench]:
    """Temporal, S3 and a database of our own, and both workers running."""
    base = Settings(_env_file=None)
    # moto accepts any credentials; boto insists on some.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    async with AsyncExitStack() as stack:
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=executable("temporal"),
            data_converter=DATA_CONVERTER,
            search_attributes=SEARCH_ATTRIBUTES,
            dev_server_startup_timeout=timedelta(seconds=30),
        )
        stack.push_async_callback(env.shutdown)
        dsn = await stack.enter_async_context(_database(base))
        endpoint = await stack.enter_async_context(_s3("travis-logs-bench"))
        settings = base.model_copy(
            update={
                "database_url": dsn,
                "temporal_address": env.client.service_client.config.target_host,
                "temporal_task_queue": "bench-lifecycle",
                "s3_endpoint_url": endpoint,
                "s3_bucket": "travis-logs-bench",
                "logs_quiet_period_s": 0,
                "logs_grace_period_s": 0,
                "logs_purge_delay_s": 0,
            }
        )
        pool = await create_pool(dsn, max_size=20)
        stack.push_async_callback(pool.close)
        s3 = await stack.enter_async_context(s3_client(settings))
        activities = lifecycle_activities(pool, ArchiveStore.for_settings(s3, settings))
        await stack.enter_async_context(build_worker(env.client, settings, activities))
        bare = Worker(
            env.client, task_queue=BARE_QUEUE, workflows=[BareWorkflow], activities=[noop]
        )
        await stack.enter_async_context(bare)
        floor = Worker(
            env.client, task_queue=FLOOR_QUEUE, workflows=[FloorWorkflow], activities=[noop]
        )
        await stack.enter_async_context(floor)
        yield Bench(env.client, settings, pool, concurrency)


async def _bounded(limit: int, jobs: list[Callable[[], Awaitable[T]]]) -> list[T]:
    """Run the jobs with at most `limit` in flight."""
    gate = asyncio.Semaphore(limit)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await job()

    return await asyncio.gather(*(one(job) for job in jobs))


async def _poll(check: Callable[[], Awaitable[bool]], every_s: float) -> None:
    while True:
        if await check():
            return
        await asyncio.sleep(every_s)


async def _store_log(bench: Bench, parts: int) -> int:
    """A log streaming: all but its last part stored, as the ingest stores them."""
    job_id, bench.next_job = bench.next_job, bench.next_job + 1
    async with bench.pool.acquire() as conn, conn.transaction():
        log_id = await conn.fetchval("INSERT INTO logs (job_id) VALUES ($1) RETURNING id", job_id)
        await conn.execute(
            "INSERT INTO log_parts (log_id, number, content)"
            " SELECT $1, n, $3 || n || E'\\n' FROM generate_series(0, $2 - 2) n",
            log_id,
            parts,
            PART_TEXT,
        )
    return job_id


async def _store_final(bench: Bench, job_id: int, number: int) -> None:
    """The final part and logs.final_number in one transaction, as the ingest stores them."""
    async with bench.pool.acquire() as conn, conn.transaction():
        log_id = await conn.fetchval(
            "UPDATE logs SET final_number = $2 WHERE job_id = $1 RETURNING id", job_id, number
        )
        await conn.execute(
            "INSERT INTO log_parts (log_id, number, content, final) VALUES ($1, $2, '', true)",
            log_id,
            number,
        )


async def _signal(bench: Bench, job_id: int, number: int, final: bool) -> None:
    ref = PartRef(number, len(PART_TEXT) + 4, final)
    # As the ingest signals: the first part opens the log (its run sleeps until the final),
    # and its batch created the row (_store_log), so the run does not read the row first.
    opens = number == 0 and not final
    signal = PartsSignal(job_id, [ref], opens=opens, created=number == 0)
    await signal_parts(bench.client, bench.settings, signal)


async def _open(bench: Bench, jobs: list[int]) -> None:
    """First parts signalled: every run exists, asleep until its final part's signal (no
    workflow task runs before it, so there is nothing else to wait for)."""
    await _bounded(bench.concurrency, [partial(_signal, bench, j, 0, False) for j in jobs])


async def _finish(bench: Bench, job_id: int, last: int) -> float:
    """Signal the (stored) final part; when the lifecycle completed (monotonic seconds)."""
    await _signal(bench, job_id, last, final=True)
    # The result as plain JSON: converting it to LogWorkflowState is this client's work (no
    # production client waits for it), and the bare workflow's result is an int.
    state = await bench.client.get_workflow_handle(workflow_id(job_id)).result()
    assert state["state"] == LogState.DONE, state
    return time.monotonic()


@dataclass
class HistoryCost:
    events: int
    tasks: int  # workflow tasks completed
    upserts: int
    actions: BillableActions

    @classmethod
    def of(cls, history: WorkflowHistory) -> HistoryCost:
        kinds = [event.event_type for event in history.events]
        return cls(
            len(kinds),
            kinds.count(EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED),
            kinds.count(EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES),
            billable_actions(history.events),
        )

    def __str__(self) -> str:
        return f"{self.events} events, {self.tasks} workflow tasks, {self.upserts} upserts"


async def lifecycle_history(bench: Bench, parts: int) -> WorkflowHistory:
    job_id = await _store_log(bench, parts)
    await _open(bench, [job_id])
    await _store_final(bench, job_id, parts - 1)
    await _finish(bench, job_id, parts - 1)
    return await bench.client.get_workflow_handle(workflow_id(job_id)).fetch_history()


def event_names(history: WorkflowHistory) -> str:
    """The history's event types in order, without the EVENT_TYPE_ prefix."""
    return ", ".join(
        EventType.Name(event.event_type).removeprefix("EVENT_TYPE_") for event in history.events
    )


async def bare_cost(bench: Bench) -> HistoryCost:
    handle = await bench.client.start_workflow(
        BareWorkflow.run, 0, id=f"bare-{uuid.uuid4()}", task_queue=BARE_QUEUE
    )
    await handle.result()
    return HistoryCost.of(await handle.fetch_history())


async def lifecycle_rate(bench: Bench, jobs: list[int]) -> float:
    """Lifecycles/s from the final parts' signals to the last purged log."""
    logs = len(jobs)
    started = time.monotonic()
    ends = await _bounded(bench.concurrency, [partial(_finish, bench, j, 9) for j in jobs])
    return logs / (max(ends) - started)


async def bare_rate(bench: Bench, runs: int) -> float:
    async def one(n: int) -> float:
        await bench.client.execute_workflow(
            BareWorkflow.run, n, id=f"bare-{uuid.uuid4()}", task_queue=BARE_QUEUE
        )
        return time.monotonic()

    started = time.monotonic()
    ends = await _bounded(bench.concurrency, [partial(one, n) for n in range(runs)])
    return runs / (max(ends) - started)


async def _floor_signal(bench: Bench, workflow_id: str, final: bool) -> None:
    """A part's signal-with-start to a floor run, with a log run's start options and delay."""
    signal = PartsSignal(
        0, [PartRef(9 if final else 0, len(PART_TEXT) + 4, final)], opens=not final
    )
    options = {**start_options(bench.settings, 0), "id": workflow_id, "task_queue": FLOOR_QUEUE}
    await bench.client.start_workflow(
        FloorWorkflow.run,
        0,
        start_signal=SIGNAL_PARTS,
        start_signal_args=[signal],
        start_delay=start_delay(bench.settings, signal),
        **options,
    )


async def _floor_finish(bench: Bench, workflow_id: str) -> None:
    await _floor_signal(bench, workflow_id, final=True)
    await bench.client.get_workflow_handle(workflow_id).result()


async def floor_cpu(bench: Bench, runs: int) -> Cpu:
    """CPU per floor run: its first part's signal, then its final part's to completion."""
    ids = [f"floor-{uuid.uuid4().hex[:12]}" for _ in range(runs)]
    opening = _bounded(bench.concurrency, [partial(_floor_signal, bench, i, False) for i in ids])
    _, opened = await _measured(opening, runs)
    finishing = _bounded(bench.concurrency, [partial(_floor_finish, bench, i) for i in ids])
    _, finished = await _measured(finishing, runs)
    return opened + finished


async def purge_latency(bench: Bench, samples: int) -> list[float]:
    """Seconds from sending the final part's signal to `purged_at` being set, one at a time."""
    latencies = []
    for _ in range(samples):
        job_id = await _store_log(bench, 10)
        await _open(bench, [job_id])
        started = time.monotonic()
        await _store_final(bench, job_id, 9)
        await _signal(bench, job_id, 9, final=True)

        async def purged(job_id: int = job_id) -> bool:
            query = "SELECT purged_at IS NOT NULL FROM logs WHERE job_id = $1"
            return bool(await bench.pool.fetchval(query, job_id))

        await _poll(purged, 0.005)
        latencies.append(time.monotonic() - started)
    return latencies


def _children_cpu_s() -> defaultdict[str, float]:
    """CPU seconds used so far by this process's children, by name (temporal, moto_server)."""
    total: defaultdict[str, float] = defaultdict(float)
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, fields = stat.read_text().split(" (", 1)[1].rsplit(")", 1)
        except (OSError, IndexError, ValueError):
            continue
        values = fields.split()
        if int(values[1]) == os.getpid():
            total[name] += (int(values[11]) + int(values[12])) / tick
    return total


@dataclass
class Cpu:
    """CPU ms per item: this process (worker, client), the Temporal server, the S3 stand-in."""

    own: float
    temporal: float
    s3: float

    def __str__(self) -> str:
        return (
            f"worker {self.own:.1f} + Temporal {self.temporal:.1f} = "
            f"{self.own + self.temporal:.1f} (S3 stand-in {self.s3:.1f})"
        )

    def __add__(self, other: Cpu) -> Cpu:
        return Cpu(self.own + other.own, self.temporal + other.temporal, self.s3 + other.s3)


async def _measured(work: Awaitable[T], count: int) -> tuple[T, Cpu]:
    """What `work` returns, and the CPU it cost per item."""
    own, children = time.process_time(), _children_cpu_s()
    rate = await work
    used = _children_cpu_s()
    for name, spent in children.items():
        used[name] -= spent
    per = 1000 / count
    cpu = Cpu((time.process_time() - own) * per, used["temporal"] * per, used["moto_server"] * per)
    return rate, cpu


@dataclass
class Round:
    """One bare run and one lifecycle run, back to back."""

    baseline: float
    bare_cpu: Cpu
    ours: float
    opening: Cpu
    finishing: Cpu
    floor: Cpu


async def _round(bench: Bench, logs: int) -> Round:
    baseline, bare_cpu = await _measured(bare_rate(bench, logs), logs)
    # The first part's signal-with-start is measured apart from the rest: only the rest
    # counts for the rate. What the ingest stores is not measured: it is the same with or
    # without Temporal.
    jobs = [await _store_log(bench, 10) for _ in range(logs)]
    _, opening = await _measured(_open(bench, jobs), logs)
    for job_id in jobs:  # stored, not yet signalled: the runs do not know of them
        await _store_final(bench, job_id, 9)
    ours, finishing = await _measured(lifecycle_rate(bench, jobs), logs)
    floor = await floor_cpu(bench, logs)
    return Round(baseline, bare_cpu, ours, opening, finishing, floor)


def _median_cpu(cpus: list[Cpu]) -> Cpu:
    return Cpu(
        statistics.median(c.own for c in cpus),
        statistics.median(c.temporal for c in cpus),
        statistics.median(c.s3 for c in cpus),
    )


async def run(logs: int, concurrency: int, events: bool, rounds: int) -> None:
    async with services(concurrency) as bench:
        history = await lifecycle_history(bench, 10)
        small = HistoryCost.of(history)
        large = HistoryCost.of(await lifecycle_history(bench, 10_000))
        bare = await bare_cost(bench)
        if events:
            print(f"events of a 10-part lifecycle: {event_names(history)}")
        print(f"per log, 10 parts: {small}; 10,000 parts: {large}")
        print(f"  bare 4-activity workflow: {bare}")
        print("  (targets: <= 25 events, the same for both sizes; <= 3 upserts)")
        print(f"Temporal Cloud billable actions per lifecycle: {small.actions}")
        print(f"  bare 4-activity workflow: {bare.actions}")
        print("  (heartbeats and queries leave no history event: not counted)")
        await bare_rate(bench, 20)  # warm-up: caches, connections
        # Bare and lifecycle runs take turns, `rounds` times, and the medians are printed:
        # one pair's ratio moves with whatever else the machine does during it.
        found = [await _round(bench, logs) for _ in range(rounds)]
        for n, r in enumerate(found, 1):
            print(
                f"  round {n}: lifecycles/s {r.ours:.1f}, bare {r.baseline:.1f}/s; CPU ms per"
                f" lifecycle {r.opening + r.finishing}; per bare workflow {r.bare_cpu}"
            )
        ours = statistics.median(r.ours for r in found)
        baseline = statistics.median(r.baseline for r in found)
        opening = _median_cpu([r.opening for r in found])
        finishing = _median_cpu([r.finishing for r in found])
        bare_cpu = _median_cpu([r.bare_cpu for r in found])
        floor = _median_cpu([r.floor for r in found])
        whole = _median_cpu([r.opening + r.finishing for r in found])
        print(
            f"complete lifecycles/s (final part to purged, quiet period 0): {ours:.1f}; "
            f"bare 4-activity workflow: {baseline:.1f}/s; ratio {ours / baseline:.2f} "
            f"(target >= 1.0; medians of {rounds} rounds)"
        )
        print(f"  CPU ms per lifecycle: {whole}")
        print(f"    first part: {opening}; final part to purged: {finishing}")
        print(f"  CPU ms per bare workflow: {bare_cpu} (target: worker + Temporal <= bare)")
        ratios = [(r.opening + r.finishing, r.bare_cpu) for r in found]
        temporal = statistics.median(w.temporal / b.temporal for w, b in ratios)
        worker = statistics.median(w.own / b.own for w, b in ratios)
        print(
            f"  per lifecycle against the bare workflow: Temporal {temporal:.2f}x (target <= 0.5),"
            f" worker {worker:.2f}x (target <= 0.8); billable actions {small.actions.total}"
            f" (target <= 6); medians of the rounds' ratios"
        )
        print(
            f"  CPU ms per floor run (one workflow per log: the same starts and signals, "
            f"4 no-op local activities, 1 upsert): {floor}"
        )
        floors = [(r.opening + r.finishing, r.floor, r.bare_cpu) for r in found]
        print(
            "  the floor against the bare workflow: Temporal"
            f" {statistics.median(f.temporal / b.temporal for _, f, b in floors):.2f}x,"
            f" worker {statistics.median(f.own / b.own for _, f, b in floors):.2f}x;"
            " the lifecycle against the floor: Temporal"
            f" {statistics.median(w.temporal / f.temporal for w, f, _ in floors):.2f}x,"
            f" worker {statistics.median(w.own / f.own for w, f, _ in floors):.2f}x"
        )
        latencies = await purge_latency(bench, 10)
        print(
            f"final part to purged, idle, quiet period 0: median "
            f"{statistics.median(latencies):.3f} s, max {max(latencies):.3f} s over "
            f"{len(latencies)} logs (target <= 0.5 s)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=int, default=200, help="logs per throughput run")
    parser.add_argument("--concurrency", type=int, default=50, help="RPCs in flight")
    parser.add_argument("--events", action="store_true", help="print one lifecycle's events")
    parser.add_argument("--rounds", type=int, default=3, help="bare/lifecycle turns (3)")
    args = parser.parse_args()
    work = run(args.logs, args.concurrency, args.events, args.rounds)
    asyncio.run(asyncio.wait_for(work, timeout=TIME_LIMIT_S))
    # The Temporal SDK's threads can crash the interpreter's finalisation (PyGILState_Release);
    # everything is closed and printed by now, so leave without it.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
