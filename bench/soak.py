"""An hour under load: does anything of the whole stack grow without bound?

Starts `travis-logs dev --no-simulate` (Temporal dev server on its SQLite file, the embedded
S3, the Pusher server, ingest, worker, API) on a private PostgreSQL cluster with PostgreSQL's
default settings (autovacuum on) and a RabbitMQ vhost of its own, keeps C jobs streaming for
`--minutes` with the capacity bench's load generator (a part every 500 ms per job, 60-s jobs,
production lifecycle clocks), and prints every minute:

* the RSS of each process of the stack;
* the database's size, its tables and indexes, and the dead tuples of log_parts and logs;
* the Temporal database's size (SQLite file and its WAL);
* the embedded S3's folder on disk and its RSS;
* the open (running) workflows;
* live p99 (pusher-js on a sample of channels) and final part -> purged p99 of that minute.

At the end, a verdict per series over the run after its warm-up: flat, bounded (with the
largest value seen) or growing (slope per hour). Data kept on purpose (archives on disk, one
`logs` row per job, closed workflows until the namespace's retention) grows with the jobs
run: the verdict names its growth per job so that it can be told from a leak.

    .venv/bin/python bench/soak.py --c 150 --minutes 60 > soak.txt 2>&1 &

`kill PID` (SIGTERM) or Ctrl-C stops it early: it stops the stack and reports what it sampled.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.budget import pct
from bench.capacity import (
    PusherWatcher,
    Sent,
    Stack,
    _ready,
    _s3_settings,
    _settings_of,
    generate,
    plan_slots,
    rss_mib,
    stack_env,
)
from tests.private_postgres import PrivatePostgres
from tests.pusher_support import ensure_pusher_js
from travis_logs.binaries import executable
from travis_logs.settings import Settings
from travis_logs.temporal import connect
from workers.devsecrets import load_or_create
from workers.verify_archives import run as verify_archives

MIB = 2**20
# Series that grow with what is kept on purpose (archives, a `logs` row per job, closed
# workflows until the namespace's retention, moto's index entry per object): their verdict
# is their growth per job, to be told from a leak.
PER_JOB = {"db logs", "db total", "temporal db", "s3 on disk", "rss s3-server"}

STATS_SQL = """
SELECT pg_database_size(current_database()) AS total,
       pg_total_relation_size('log_parts') AS log_parts,
       pg_total_relation_size('logs') AS logs,
       (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'log_parts') AS parts_dead,
       (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'logs') AS logs_dead,
       (SELECT autovacuum_count FROM pg_stat_user_tables WHERE relname = 'log_parts') AS vacuums
"""


@dataclass
class Series:
    unit: str
    values: list[float] = field(default_factory=list)


@dataclass
class Soak:
    """Samples of every series, one per minute, and the jobs finished by then."""

    series: dict[str, Series] = field(default_factory=dict)
    jobs_done: list[int] = field(default_factory=list)

    def add(self, name: str, value: float, unit: str) -> None:
        self.series.setdefault(name, Series(unit)).values.append(value)


def folder_mib(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total / MIB


def files_mib(*paths: Path) -> float:
    return sum(p.stat().st_blocks * 512 for p in paths if p.exists()) / MIB


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


@contextlib.contextmanager
def own_vhost(base: str, vhost: str) -> Iterator[str]:
    """A vhost of the soak's own on the shared RabbitMQ, deleted afterwards."""
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"{base.rstrip('/')}/{vhost}"
    finally:
        rabbitmqctl("delete_vhost", vhost)


@contextlib.asynccontextmanager
async def soak_stack(folder: Path) -> AsyncIterator[tuple[Stack, Path]]:
    """`travis-logs dev` on a private PostgreSQL cluster and a RabbitMQ vhost of its own."""
    postgres = PrivatePostgres(folder / "postgres")
    await asyncio.to_thread(postgres.init)
    await asyncio.to_thread(postgres.start)
    tag = uuid.uuid4().hex[:8]
    base = Settings()
    try:
        admin = await asyncpg.connect(postgres.dsn, database="postgres")
        await admin.execute("CREATE DATABASE travis_logs")
        await admin.close()
        with own_vhost(str(base.rabbitmq_url), f"travis-logs-soak-{tag}") as amqp_url:
            async with _dev(folder, base, tag, postgres.dsn, amqp_url) as found:
                yield found
    finally:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(postgres.stop)


@contextlib.asynccontextmanager
async def _dev(
    folder: Path, base: Settings, tag: str, dsn: str, amqp_url: str
) -> AsyncIterator[tuple[Stack, Path]]:
    """`travis-logs dev --no-simulate` with the soak's own ports, data folder and services."""
    data_dir = folder / "dev"
    data_dir.mkdir()
    made = load_or_create(data_dir)
    env = stack_env(base, data_dir, "travis_logs", tag, {})
    env.update(DATABASE_URL=dsn, RABBITMQ_URL=amqp_url)
    for clock in ("LOGS_QUIET_PERIOD_S", "LOGS_GRACE_PERIOD_S"):
        env.pop(clock)  # production lifecycle clocks
    with (folder / "dev.log").open("w+b") as out:
        process = await asyncio.create_subprocess_exec(
            executable("travis-logs"), "dev", "--no-simulate", env=env, cwd=data_dir,
            stdout=out, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            settings = Settings.model_validate(_settings_of(env))
            await _ready(process, settings, out, timeout=600)  # a loaded machine
            metrics = f"http://127.0.0.1:{env['INGEST_METRICS_PORT']}/metrics"
            yield (
                Stack(process, settings, env, metrics, made.pusher_key, "travis_logs", data_dir),
                data_dir,
            )
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(process.wait(), 120)


class Sampler:
    """Takes one sample of every series a minute and prints it as a line."""

    def __init__(self, stk: Stack, data_dir: Path, pool: asyncpg.Pool, sent: Sent) -> None:
        self.stk, self.data_dir, self.pool, self.sent = stk, data_dir, pool, sent
        self.soak = Soak()
        self._live_seen = 0
        self._since = time.time()

    async def sample(self, watcher: PusherWatcher, client: object) -> None:
        now = time.time()
        for name, pids in self.stk.pids().items():
            self.soak.add(f"rss {name}", rss_mib(pids), "MiB")
        row = await self.pool.fetchrow(STATS_SQL)
        assert row is not None
        self.soak.add("db total", row["total"] / MIB, "MiB")
        self.soak.add("db log_parts", row["log_parts"] / MIB, "MiB")
        self.soak.add("db logs", row["logs"] / MIB, "MiB")
        self.soak.add("log_parts dead", row["parts_dead"] or 0, "tuples")
        self.soak.add("logs dead", row["logs_dead"] or 0, "tuples")
        db = self.data_dir / "temporal.db"
        wal, shm = db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")
        self.soak.add("temporal db", files_mib(db, wal, shm), "MiB")
        self.soak.add("s3 on disk", folder_mib(self.data_dir / "s3"), "MiB")
        count = await client.count_workflows('ExecutionStatus="Running"')  # type: ignore[attr-defined]
        self.soak.add("open workflows", count.count, "")
        live = watcher.latencies[self._live_seen :]
        self._live_seen += len(live)
        self.soak.add("live p99", pct(live, 99) if live else float("nan"), "ms")
        purged = await self.pool.fetch(
            "SELECT job_id, extract(epoch FROM purged_at)::float8 AS at FROM logs"
            " WHERE purged_at >= to_timestamp($1) AND purged_at < to_timestamp($2)",
            self._since,
            now,
        )
        delays = [
            r["at"] - self.sent.finals[r["job_id"]]
            for r in purged
            if r["job_id"] in self.sent.finals
        ]
        self.soak.add("final->purged p99", pct(delays, 99) if delays else float("nan"), "s")
        self._since = now
        self.soak.jobs_done.append(len(self.sent.finals))
        print(self.line(row["vacuums"]), flush=True)

    def line(self, vacuums: int) -> str:
        minute = len(self.soak.jobs_done)
        cells = [f"min {minute:3d}", f"jobs {self.soak.jobs_done[-1]:6d}"]
        for name, s in self.soak.series.items():
            cells.append(f"{name} {_fmt(s.values[-1])}{s.unit and ' ' + s.unit}")
        cells.append(f"log_parts autovacuums {vacuums or 0}")
        return " | ".join(cells)


def _fmt(value: float) -> str:
    if value != value:  # nan: nothing measured this minute
        return "-"
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.1f}"


def slope_per_hour(values: list[float]) -> float:
    """Least-squares slope of one sample a minute, per hour."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x, mean_y = (n - 1) / 2, sum(values) / n
    num = sum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = sum((i - mean_x) ** 2 for i in range(n))
    return num / den * 60


def verdict(name: str, s: Series, jobs_done: list[int], warmup: int) -> str:
    """Flat, bounded or growing, judged on the samples after the warm-up."""
    values = [v for v in s.values[warmup:] if v == v]
    if len(values) < 3:
        return f"{name}: too few samples"
    unit = s.unit and f" {s.unit}"
    if name in PER_JOB:
        jobs = jobs_done[-1] - jobs_done[warmup]
        grown = values[-1] - values[0]
        per_job = grown * MIB / max(jobs, 1) if s.unit == "MiB" else grown / max(jobs, 1)
        return (
            f"{name}: grows with what is kept, {slope_per_hour(values):+.1f}{unit}/h,"
            f" {per_job:,.0f} {'bytes' if s.unit == 'MiB' else s.unit} per job"
        )
    level = max(abs(sum(values) / len(values)), 1e-9)
    if (max(values) - min(values)) / level <= 0.10:
        return f"{name}: flat ({min(values):.1f}-{max(values):.1f}{unit})"
    # Growing: the last third's mean is still more than a tenth above the middle third's.
    third = len(values) // 3
    middle, last = values[third : 2 * third], values[2 * third :]
    if sum(last) / len(last) > 1.10 * sum(middle) / len(middle):
        return f"{name}: GROWING {slope_per_hour(last):+.1f}{unit}/h (last {values[-1]:.1f}{unit})"
    return f"{name}: bounded <= {max(values):.1f}{unit} (last third {slope_per_hour(last):+.1f}{unit}/h)"


def table(soak: Soak, every: int = 10) -> str:
    """The series every `every` minutes, one row per series (for the README)."""
    picks = list(range(every - 1, len(soak.jobs_done), every))
    head = "| series | " + " | ".join(f"{i + 1} min" for i in picks) + " |"
    rule = "|---|" + "---:|" * len(picks)
    rows = [
        f"| {name}{s.unit and f' ({s.unit})'} | "
        + " | ".join(_fmt(s.values[i]) for i in picks)
        + " |"
        for name, s in soak.series.items()
    ]
    jobs = "| jobs finished | " + " | ".join(str(soak.jobs_done[i]) for i in picks) + " |"
    return "\n".join([head, rule, jobs, *rows])


async def run(args: argparse.Namespace, folder: Path) -> Soak:
    # Stopped by a signal, the soak still stops the stack it started (a shell's background
    # job ignores SIGINT unless told otherwise: SIGTERM is the way to stop one).
    main_task = asyncio.current_task()
    assert main_task is not None
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, main_task.cancel)
    run_s = args.minutes * 60
    async with soak_stack(folder) as (stk, data_dir):
        pool = await asyncpg.create_pool(stk.env["DATABASE_URL"], min_size=1, max_size=2)
        assert pool is not None
        client = await connect(stk.settings)
        connection = await aio_pika.connect(str(stk.settings.rabbitmq_url))
        try:
            channel = await connection.channel(publisher_confirms=False)
            exchange = await channel.get_exchange(stk.settings.amqp_exchange)
            first_job = random.randrange(10**12, 2 * 10**12)
            slots = plan_slots(args.c, run_s, args.job_s, first_job, args.sample)
            channels = [f"job-{j}" for s in slots if s.sample for j, _, _ in s.jobs]
            sent = Sent()
            sampler = Sampler(stk, data_dir, pool, sent)
            async with PusherWatcher.run(stk, channels) as watcher:
                await asyncio.sleep(stk.settings.pusher_occupancy_ttl_s + 1)
                load = asyncio.create_task(
                    generate(exchange, stk.settings.amqp_routing_key, slots, sent)
                )
                try:
                    for _ in range(args.minutes):
                        await asyncio.sleep(60)
                        await sampler.sample(watcher, client)
                    await load
                except asyncio.CancelledError:  # stopped early: report what was sampled
                    asyncio.current_task().uncancel()  # type: ignore[union-attr]
                    load.cancel()
                    print("stopped early", flush=True)
            report = await verify_archives(_s3_settings(stk), sent.manifest(), wait_s=120)
            print(
                f"sampled archives byte-exact: {len(report.matched)} of {len(sent.manifest().jobs)}",
                flush=True,
            )
        finally:
            await connection.close()
            await pool.close()
    return sampler.soak


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--c", type=int, default=150, help="concurrent jobs (150)")
    parser.add_argument("--minutes", type=int, default=60, help="minutes under load (60)")
    parser.add_argument("--job-s", type=float, default=60, help="seconds per job (60)")
    parser.add_argument("--sample", type=int, default=10, help="slots watched live (10)")
    parser.add_argument("--warmup", type=int, default=5, help="minutes left out of verdicts (5)")
    parser.add_argument("--keep", action="store_true", help="keep the data folder")
    args = parser.parse_args()
    ensure_pusher_js()
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "dev")  # the embedded S3 takes any credentials
    folder = Path(tempfile.mkdtemp(prefix="travis-logs-soak-"))
    folder.chmod(0o755)  # the private PostgreSQL runs as its own OS user
    print(f"soak: C={args.c} for {args.minutes} min; data and logs in {folder}", flush=True)
    try:
        soak = asyncio.run(run(args, folder))
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)
    warmup = min(args.warmup, max(0, args.minutes - 3))
    print(f"\nper {10 if args.minutes >= 20 else 1} minutes:")
    print(table(soak, 10 if args.minutes >= 20 else 1))
    print(f"\nverdicts (after a {warmup}-minute warm-up):")
    for name, s in soak.series.items():
        print("  " + verdict(name, s, soak.jobs_done, warmup))
    print(json.dumps({n: s.values for n, s in soak.series.items()} | {"jobs": soak.jobs_done}))


if __name__ == "__main__":
    main()
