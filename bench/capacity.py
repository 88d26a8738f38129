"""Capacity of the whole stack on this machine: C jobs streaming at once, as travis-worker does.

Starts `travis-logs dev --no-simulate` (its own database, data directory, ports, AMQP
names; the Pusher existence check on, quiet period 2 s) and, for each C, keeps C jobs
streaming: a part every 500 ms of 80-1,653 bytes, jobs of 60 s whose starts are spread out
(the slots start one after the other over the first 10 s, each with a job cut short; each
slot's last job runs its full length, so the level ends as it ran, without C final parts
at once), a new job replacing each finished one. It measures:

* parts/s offered, sent and stored (the ingest's own counter);
* live latency: pusher-js (node) watches a sample of channels; each part carries its
  publish time (`t=<epoch ms>;` first in its text);
* final part -> purged, per job, from `logs.purged_at`;
* the broker's backlog (ready messages) every second, by a passive queue declare;
* CPU seconds per process (/proc/<pid>/stat) per part and per lifecycle;
* every archive of the sample, byte for byte, against what was sent;
* after the load, how long the queue took to drain (parts still queued are waited for, up
  to `--drain-s`, before any is counted as lost);
* the latency budget (bench/budget.py): each stage of the final part's way from the `logs`
  timeline columns and a sample of workflow histories, read after the level; every
  workflow task's wait by cause and queue; the worker's SDK metrics over the level;
* per log: billable Temporal actions, bytes written to PostgreSQL and to the S3 stand-in
  (bench/footprint.py).

One row per C (each on a fresh stack), then the largest C that meets every target.
Bounded: each C runs `--generations` x `--job-s` seconds, up to one more job length while
the last jobs end, plus the drain and the wait for the last purges. PostgreSQL and RabbitMQ are shared with whatever else runs here: their CPU
columns (and the WAL figure) count all of it. `--variant NAME:KEY=VALUE,...` compares
configurations (the stack's environment) in one run, taking turns at each C.

    .venv/bin/python bench/capacity.py --c 250,500 --generations 2
    .venv/bin/python bench/capacity.py --c 250 --variant fixed: --variant auto:WORKER_POLLER_AUTOSCALING=true
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import heapq
import json
import math
import os
import random
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import asyncpg
import httpx
from aio_pika.abc import AbstractChannel, AbstractExchange
from prometheus_client.parser import text_string_to_metric_families
from stamina.instrumentation import set_on_retry_hooks
from temporalio.client import Client
from temporalio.service import RPCError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.budget import (
    TIMELINE_QUERY,
    Budget,
    HistoryStamps,
    budget,
    mean_actions,
    pct,
    read_history,
)
from bench.footprint import SdkMetrics, Writes, sdk_metrics, writes
from tests.helpers import free_port
from tests.pusher_support import NODE_CLIENT, ROOT, ensure_pusher_js
from travis_logs.binaries import executable
from travis_logs.checks import wait_for_port
from travis_logs.settings import Settings
from travis_logs.simulator.manifest import JobRecord, Manifest
from workers.devsecrets import load_or_create
from workers.verify_archives import run as verify_archives
from workflows.models import workflow_id

PART_S = 0.5  # travis-worker flushes every 500 ms
MIN_BYTES, MAX_BYTES = 80, 1653
QUIET_S = 2.0
RAMP_S = 10.0  # the slots' first jobs start one after the other over this long
FILLER = "".join(random.Random(12).choices("abcdefghijklmnopqrstuvwxyz 0123456789", k=4096))
CLK_TCK = os.sysconf("SC_CLK_TCK")
PROCESSES = ("ingest", "worker", "api", "pusher-server", "temporal", "s3-server")


@dataclass
class Slot:
    """One of the C places a job streams in; `jobs` are (job id, start s, parts) in order."""

    jobs: list[tuple[int, float, int]]
    index: int = 0
    number: int = 1
    sample: bool = False

    def due(self) -> float | None:
        if self.index >= len(self.jobs):
            return None
        _, start, _ = self.jobs[self.index]
        return start + (self.number - 1) * PART_S


def plan_slots(
    c: int, run_s: float, job_s: float, first_job: int, sample: int, *, end_together: bool = False
) -> list[Slot]:
    """C slots whose job boundaries are spread evenly over one job length.

    A slot's first job is cut short, so that C jobs stream within the first `RAMP_S` (the
    slots start one after the other over it, as C new logs at once would be a burst of C
    runs started); its last job runs its full length past `run_s`, so jobs end as spread
    out as they started. Cut at `run_s` instead (`end_together`), all C final parts come
    at once: a burst of C lifecycles in the last half second, not the steady load a level
    measures.
    """
    step = max(1, c // sample)
    ramp_s = min(RAMP_S, job_s / 4)
    slots = []
    for s in range(c):
        starts = [s / c * ramp_s, *_boundaries((s + 0.5) / c * job_s, job_s, run_s)]
        spread = len(starts) > 1 and not end_together
        last_end = starts[-1] + job_s if spread else run_s
        jobs = []
        for k, (start, end) in enumerate(zip(starts, [*starts[1:], last_end], strict=True)):
            parts = max(2, round((end - start) / PART_S))
            jobs.append((first_job + s * 100 + k, start, parts))
        slots.append(Slot(jobs, sample=s % step == 0))
    return slots


def _boundaries(phase: float, job_s: float, run_s: float) -> list[float]:
    out, t = [], phase
    while t < run_s - 2 * PART_S:
        out.append(t)
        t += job_s
    return out


@dataclass
class Sent:
    """What the load generator sent in one level."""

    parts: int = 0
    firsts: dict[int, float] = field(default_factory=dict)  # job id -> time of its first part
    finals: dict[int, float] = field(default_factory=dict)  # job id -> time of its final part
    digests: dict[int, tuple[int, hashlib._Hash]] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    lag: list[float] = field(default_factory=list)  # s late against the schedule, per wake-up

    def record(self, job_id: int, text: bytes) -> None:
        size, digest = self.digests.setdefault(job_id, (0, hashlib.sha256()))
        digest.update(text)
        self.digests[job_id] = (size + len(text), digest)
        self.counts[job_id] = self.counts.get(job_id, 0) + 1

    def manifest(self) -> Manifest:
        jobs = tuple(
            JobRecord(job, self.counts[job], size, digest.hexdigest())
            for job, (size, digest) in sorted(self.digests.items())
            if job in self.finals
        )
        return Manifest(0, jobs)


def part_body(job_id: int, number: int, final: bool, rng: random.Random) -> tuple[bytes, bytes]:
    """(AMQP body, the log text it carries): JSON built by hand, the text needs no escaping."""
    if final:
        return b'{"id":%d,"log":"","number":%d,"final":true,"uuid":"c"}' % (job_id, number), b""
    stamp = f"t={time.time() * 1000:.3f};"
    size = rng.randint(MIN_BYTES, MAX_BYTES) - len(stamp) - 1
    offset = rng.randrange(len(FILLER) - size)
    text = f"{stamp}{FILLER[offset : offset + size]}"
    body = b'{"id":%d,"log":"%s\\n","number":%d,"final":false,"uuid":"c"}' % (
        job_id,
        text.encode(),
        number,
    )
    return body, (text + "\n").encode()


async def generate(exchange: AbstractExchange, key: str, slots: list[Slot], sent: Sent) -> None:
    """Publish every slot's parts at their times until all slots are done."""
    rng, loop = random.Random(7), asyncio.get_running_loop()
    start = loop.time()
    heap = [(due, i) for i, s in enumerate(slots) if (due := s.due()) is not None]
    heapq.heapify(heap)
    while heap:
        delay = start + heap[0][0] - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        now = loop.time() - start
        sent.lag.append(now - heap[0][0])
        while heap and heap[0][0] <= now:
            _, i = heapq.heappop(heap)
            await _send_next(exchange, key, slots[i], sent, rng)
            if (due := slots[i].due()) is not None:
                heapq.heappush(heap, (due, i))


async def _send_next(
    exchange: AbstractExchange, key: str, slot: Slot, sent: Sent, rng: random.Random
) -> None:
    job_id, _, parts = slot.jobs[slot.index]
    final = slot.number == parts
    body, text = part_body(job_id, slot.number, final, rng)
    await exchange.publish(aio_pika.Message(body, delivery_mode=2), routing_key=key)
    sent.parts += 1
    if slot.number == 1:
        sent.firsts[job_id] = time.time()
    if slot.sample:
        sent.record(job_id, text)
    if final:
        sent.finals[job_id] = time.time()
        slot.index, slot.number = slot.index + 1, 1
    else:
        slot.number += 1


@dataclass
class Stack:
    """`travis-logs dev` running for the bench, and how to reach its parts."""

    process: asyncio.subprocess.Process
    settings: Settings
    env: dict[str, str]
    metrics_url: str
    pusher_key: str
    database: str
    data_dir: Path

    @property
    def sdk_metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.env['TEMPORAL_METRICS_PORT']}/metrics"

    def pids(self) -> dict[str, list[int]]:
        """The stack's processes by name, found among the descendants of `dev`."""
        found: dict[str, list[int]] = {name: [] for name in PROCESSES}
        for pid in _descendants(self.process.pid):
            argv = _cmdline(pid)
            if "workers.cli" in argv:
                name = argv[argv.index("workers.cli") + 1]
            else:
                name = Path(argv[0]).name if argv else ""
            if name in found:
                found[name].append(pid)
        return found


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    return children


def _descendants(root: int) -> list[int]:
    children, out, todo = _children_map(), [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _cmdline(pid: int) -> list[str]:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    return []


def cpu_s(pids: Iterable[int]) -> float:
    """utime + stime of the processes (and their reaped children), in seconds."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(f) for f in fields[11:15])
    return total / CLK_TCK


def rss_mib(pids: Iterable[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def comm_pids(name: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if (entry / "comm").read_text().strip() == name:
                    pids.append(int(entry.name))
    return pids


def stack_env(
    base: Settings, data_dir: Path, database: str, tag: str, overrides: dict[str, str]
) -> dict[str, str]:
    """Own ports, names and database: the bench never meets another stack on this machine."""
    url = base.database_url
    dsn = f"postgresql://{url.hosts()[0]['username'] or 'postgres'}@{url.hosts()[0]['host']}:{url.hosts()[0]['port'] or 5432}/{database}"
    return {
        **os.environ,
        "DATABASE_URL": dsn,
        "DEV_DATA_DIR": str(data_dir),
        "DEV_SIMULATE": "false",
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "DEV_TEMPORAL_UI_PORT": str(free_port()),
        "PORT": str(free_port()),
        "DEV_S3_PORT": str(free_port()),
        "DEV_PUSHER_PORT": str(free_port()),
        "INGEST_METRICS_PORT": str(free_port()),
        "TEMPORAL_METRICS_PORT": str(free_port()),
        "AMQP_EXCHANGE": f"capacity-{tag}",
        "AMQP_QUEUE": f"capacity.logs-{tag}",
        "PUSHER_EXISTENCE_CHECK": "true",
        "LOGS_QUIET_PERIOD_S": str(QUIET_S),
        "LOGS_GRACE_PERIOD_S": "0",
        **overrides,
    }


@contextlib.asynccontextmanager
async def database(base: Settings, name: str) -> AsyncIterator[None]:
    admin = await asyncpg.connect(str(base.database_url), database="postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@contextlib.asynccontextmanager
async def stack(base: Settings, overrides: dict[str, str]) -> AsyncIterator[Stack]:
    """A `dev` stack of the bench's own, stopped (SIGTERM to its pid) afterwards."""
    tag = uuid.uuid4().hex[:8]
    name = f"capacity_{tag}"
    with tempfile.TemporaryDirectory(prefix="capacity-") as tmp, tempfile.TemporaryFile() as out:
        data_dir = Path(tmp)
        made = load_or_create(data_dir)  # dev reuses them; the bench needs the Pusher key
        env = stack_env(base, data_dir, name, tag, overrides)
        async with database(base, name):
            process = await asyncio.create_subprocess_exec(
                executable("travis-logs"), "dev", "--no-simulate", env=env, cwd=tmp,
                stdout=out, stderr=asyncio.subprocess.STDOUT,
            )  # fmt: skip
            try:
                settings = Settings.model_validate(_settings_of(env))  # no .env: env only
                await _ready(process, settings, out)
                metrics = f"http://127.0.0.1:{env['INGEST_METRICS_PORT']}/metrics"
                yield Stack(process, settings, env, metrics, made.pusher_key, name, data_dir)
            finally:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
                    await asyncio.wait_for(process.wait(), 60)


def _settings_of(env: dict[str, str]) -> dict[str, str]:
    keys = set(Settings.model_fields)
    return {k.lower(): v for k, v in env.items() if k.lower() in keys}


async def _ready(
    process: asyncio.subprocess.Process, settings: Settings, out: object, timeout: float = 120
) -> None:
    wait = asyncio.create_task(wait_for_port("127.0.0.1", settings.port, "PORT", timeout))
    done = asyncio.create_task(process.wait())
    await asyncio.wait({wait, done}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    if not wait.done() or done.done():
        wait.cancel()
        done.cancel()
        out.seek(0)  # type: ignore[attr-defined]
        raise RuntimeError(f"the dev stack did not start:\n{out.read().decode()[-3000:]}")  # type: ignore[attr-defined]
    done.cancel()
    wait.result()
    await asyncio.sleep(2)  # ingest and worker connect after the API port opens


async def ingest_counters(http: httpx.AsyncClient, url: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for family in text_string_to_metric_families((await http.get(url)).text):
        for sample in family.samples:
            if sample.name == "travis_logs_ingest_parts_total":
                found[sample.labels["outcome"]] = sample.value
            elif sample.name == "travis_logs_ingest_dead_letters_total":
                found["dead"] = found.get("dead", 0) + sample.value
    return found


async def sample_backlog(channel: AbstractChannel, queue: str, into: list[int]) -> None:
    """Ready messages in the queue, once a second (the management API is not enabled)."""
    while True:
        declared = await channel.declare_queue(queue, passive=True)
        assert declared.declaration_result is not None
        into.append(declared.declaration_result.message_count or 0)
        await asyncio.sleep(1)


class PusherWatcher:
    """pusher-js in node on the sample's channels; latency = receipt - publish stamp."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.latencies: list[float] = []
        self.ready = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    @contextlib.asynccontextmanager
    async def run(cls, stk: Stack, channels: list[str]) -> AsyncIterator[PusherWatcher]:
        config = {"key": stk.pusher_key, "port": stk.settings.dev_pusher_port, "brief": True}
        process = await asyncio.create_subprocess_exec(
            "node", str(NODE_CLIENT), json.dumps({**config, "channels": channels}),
            cwd=ROOT, stdout=asyncio.subprocess.PIPE, limit=1 << 24,
            env={**os.environ, "NODE_PATH": str(ROOT / "node_modules")},
        )  # fmt: skip
        watcher = cls(process)
        try:
            await asyncio.wait_for(watcher.ready.wait(), 60)
            yield watcher
        finally:
            process.terminate()
            await process.wait()
            watcher._reader.cancel()

    async def _read(self) -> None:
        assert self.process.stdout is not None
        async for raw in self.process.stdout:
            line = json.loads(raw)
            if line["kind"] == "ready":
                self.ready.set()
            elif line["kind"] == "event" and line.get("stamp") is not None:
                self.latencies.append(line["t"] - line["stamp"])


@dataclass
class Row:
    """One level's figures."""

    c: int
    seconds: float
    sent: int
    stored: float  # while the load ran (the rest is backlog stored afterwards)
    lost: float  # sent and neither stored, duplicate nor dead-lettered once the queue drained
    drain_s: float  # after the last publish, until the queue was empty and every part taken in
    live: list[float]
    purge: list[float]
    unpurged: int
    backlog: list[int]
    archives: tuple[int, int]  # (matched, checked)
    lifecycles: int
    cpu: dict[str, float]
    rss: dict[str, float]
    lag_p99: float
    budget: Budget
    written: Writes
    sdk: SdkMetrics
    planned: int  # parts the schedule holds

    @property
    def offered(self) -> float:
        # 2 C parts/s while C jobs stream, fewer as the last jobs end one by one.
        return self.planned / self.seconds

    def backlog_cleared(self) -> bool:
        """The broker's backlog back to zero within 1 s, during the load and after it."""
        return longest_nonzero(self.backlog) <= 1 and self.drain_s <= 1

    def meets_targets(self) -> bool:
        return (
            self.stored / self.seconds >= 0.98 * self.offered
            and pct(self.live, 99) <= 100
            and self.unpurged == 0
            and pct(self.purge, 99) <= QUIET_S + 2
            and self.backlog_cleared()
            and self.lost == 0
            and self.archives[0] == self.archives[1] > 0
        )


def longest_nonzero(samples: list[int]) -> int:
    longest = run = 0
    for n in samples:
        run = run + 1 if n else 0
        longest = max(longest, run)
    return longest


async def wait_purged(pool: asyncpg.Pool, finals: dict[int, float], wait_s: float) -> list[float]:
    """Final part -> purged_at per job, waiting up to `wait_s` for the last ones."""
    deadline = time.monotonic() + wait_s
    while True:
        rows = await pool.fetch(
            "SELECT job_id, extract(epoch FROM purged_at)::float8 AS at FROM logs"
            " WHERE job_id = ANY($1::bigint[]) AND purged_at IS NOT NULL",
            list(finals),
        )
        if len(rows) == len(finals) or time.monotonic() > deadline:
            return [r["at"] - finals[r["job_id"]] for r in rows]
        await asyncio.sleep(1)


def taken_in(counters: dict[str, float], before: dict[str, float]) -> float:
    """Parts the ingest has finished with since `before`: stored, duplicates, dead letters."""
    return sum(counters.get(k, 0) - before.get(k, 0) for k in ("stored", "duplicate", "dead"))


async def drain(
    channel: AbstractChannel, stk: Stack, http: httpx.AsyncClient, before: dict[str, float],
    sent: int, wait_s: float,
) -> float:  # fmt: skip
    """Seconds until the queue is empty and every sent part taken in (inf: not within wait_s)."""
    started = time.monotonic()
    while time.monotonic() - started < wait_s:
        declared = await channel.declare_queue(stk.settings.amqp_queue, passive=True)
        assert declared.declaration_result is not None
        if not declared.declaration_result.message_count:
            done = taken_in(await ingest_counters(http, stk.metrics_url), before)
            if done >= sent:
                return time.monotonic() - started
        await asyncio.sleep(0.1)
    return math.inf


async def read_budget(stk: Stack, pool: asyncpg.Pool, sent: Sent, sample: int) -> Budget:
    """The latency budget of every finished job's row and a sample of their histories."""
    jobs = sorted(sent.finals)
    rows = [dict(r) for r in await pool.fetch(TIMELINE_QUERY, jobs)]
    step = max(1, len(jobs) // max(sample, 1))
    client = await Client.connect(stk.settings.temporal_address)
    gate = asyncio.Semaphore(8)

    async def one(job: int) -> tuple[int, HistoryStamps | None]:
        async with gate:
            try:
                history = await client.get_workflow_handle(workflow_id(job)).fetch_history()
            except RPCError:
                return job, None
            return job, read_history(history.events)

    found = await asyncio.gather(*(one(j) for j in jobs[::step]))
    histories = {job: h for job, h in found if h is not None}
    published = {j: (sent.firsts.get(j), sent.finals.get(j)) for j in jobs}
    return budget(rows, histories, published)


async def level(
    stk: Stack, channel: AbstractChannel, pool: asyncpg.Pool, c: int, args: argparse.Namespace
) -> Row:
    run_s = args.generations * args.job_s
    first_job = random.randrange(10**12, 2 * 10**12)
    slots = plan_slots(c, run_s, args.job_s, first_job, args.sample, end_together=args.end_together)
    channels = [f"job-{j}" for s in slots if s.sample for j, _, _ in s.jobs]
    exchange = await channel.get_exchange(stk.settings.amqp_exchange)
    sent, backlog = Sent(), list[int]()
    s3_folder = stk.data_dir / "s3"
    async with httpx.AsyncClient() as http, PusherWatcher.run(stk, channels) as watcher:
        await asyncio.sleep(stk.settings.pusher_occupancy_ttl_s + 1)  # webhooks -> occupancy
        extra = await extra_pids(pool, stk, watcher)
        sdk0, written0 = (
            await sdk_metrics(http, stk.sdk_metrics_url),
            await writes(pool, stk.database, s3_folder),
        )
        before, cpu0, started = (
            await ingest_counters(http, stk.metrics_url),
            cpu_all(stk, extra),
            time.monotonic(),
        )
        sampler = asyncio.create_task(sample_backlog(channel, stk.settings.amqp_queue, backlog))
        await generate(exchange, stk.settings.amqp_routing_key, slots, sent)
        seconds = time.monotonic() - started
        at_end = await ingest_counters(http, stk.metrics_url)  # what kept up with the offer
        drain_s = await drain(channel, stk, http, before, sent.parts, args.drain_s)
        purge = await wait_purged(pool, sent.finals, QUIET_S + 60)
        sampler.cancel()
        after, cpu1 = await ingest_counters(http, stk.metrics_url), cpu_all(stk, extra)
        written = await writes(pool, stk.database, s3_folder) - written0
        sdk = await sdk_metrics(http, stk.sdk_metrics_url) - sdk0
        live = list(watcher.latencies)
    report = await verify_archives(_s3_settings(stk), sent.manifest(), wait_s=10)
    costs = await read_budget(stk, pool, sent, args.histories)
    in_time = at_end.get("stored", 0) - before.get("stored", 0)
    return Row(
        c, seconds, sent.parts, in_time, sent.parts - taken_in(after, before), drain_s, live,
        purge, len(sent.finals) - len(purge), backlog,
        (len(report.matched), len(sent.manifest().jobs)), len(sent.finals),
        {k: cpu1[k] - cpu0[k] for k in cpu0}, {k: rss_mib(v) for k, v in stk.pids().items()},
        pct(sent.lag, 99), costs, written, sdk, sum(p for s in slots for _, _, p in s.jobs),
    )  # fmt: skip


def _s3_settings(stk: Stack) -> Settings:
    url = f"http://127.0.0.1:{stk.settings.dev_s3_port}"
    return stk.settings.model_copy(update={"s3_endpoint_url": url})


def cpu_all(stk: Stack, extra: dict[str, list[int]]) -> dict[str, float]:
    """CPU seconds so far of each process of the stack, the shared services and the bench."""
    found = {name: cpu_s(pids) for name, pids in {**stk.pids(), **extra}.items()}
    found["rabbitmq (shared)"] = cpu_s(comm_pids("beam.smp"))
    found["load generator"] = sum(os.times()[:2])
    return found


async def extra_pids(
    pool: asyncpg.Pool, stk: Stack, watcher: PusherWatcher
) -> dict[str, list[int]]:
    """The PostgreSQL backends serving the bench's database, and the pusher-js process."""
    rows = await pool.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", stk.database)
    return {
        "postgres backends": [r["pid"] for r in rows],
        "pusher-js (node)": [watcher.process.pid],
    }


def print_row(row: Row, label: str, task_queue: str) -> None:
    print(
        f"{label}C={row.c:5d}  offered {row.offered:6.0f}/s  sent {row.sent / row.seconds:6.0f}/s"
        f"  stored {row.stored / row.seconds:6.0f}/s  lost {row.lost:.0f}"
        f"  live p50/p99 {pct(row.live, 50):6.1f}/{pct(row.live, 99):7.1f} ms (n={len(row.live)})"
        f"  final->purged p50/p99 {pct(row.purge, 50):5.2f}/{pct(row.purge, 99):6.2f} s"
        f" ({row.unpurged} unpurged)  backlog max {max(row.backlog, default=0)}"
        f" longest>0 {longest_nonzero(row.backlog)} s drained in {row.drain_s:.1f} s"
        f"  archives {row.archives[0]}/{row.archives[1]}"
        f"  generator lag p99 {row.lag_p99 * 1000:.0f} ms  {'MEETS' if row.meets_targets() else 'misses'} targets"
    )
    per_log = max(row.lifecycles, 1)
    for name, seconds in row.cpu.items():
        print(
            f"    cpu {name:18s} {seconds:7.1f} s  {seconds / max(row.sent, 1) * 1e6:7.1f} us/part"
            f"  {seconds / per_log * 1e3:8.1f} ms/lifecycle"
            + (f"  RSS {row.rss[name]:.0f} MiB" if name in row.rss else "")
        )
    print(
        f"    per log: billable Temporal actions {mean_actions(row.budget.actions):.1f}"
        f" (n={len(row.budget.actions)}), PostgreSQL database +{row.written.database / per_log:.0f} B"
        f" (WAL of the shared cluster {row.written.wal / per_log:.0f} B), S3 stand-in"
        f" +{row.written.s3 / per_log:.0f} B"
    )
    print("    latency budget (final part's way; p50 / p99 / max over the finished jobs):")
    for line in row.budget.lines():
        print(line)
    print("    worker SDK metrics over the level (task queue kinds: normal, sticky):")
    for line in row.sdk.lines(task_queue):
        print(line)


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """`name:KEY=VALUE,KEY=VALUE` -> (name, environment overrides)."""
    name, _, pairs = text.partition(":")
    overrides = dict(pair.split("=", 1) for pair in pairs.split(",") if pair)
    return name, overrides


async def run_variant(
    base: Settings, label: str, overrides: dict[str, str], c: int, args: argparse.Namespace
) -> Row:
    """One level on a fresh stack with the variant's environment."""
    async with stack(base, overrides) as stk:
        pool = await asyncpg.create_pool(stk.env["DATABASE_URL"], min_size=1, max_size=2)
        assert pool is not None
        connection = await aio_pika.connect(str(stk.settings.rabbitmq_url))
        try:
            channel = await connection.channel(publisher_confirms=False)
            row = await level(stk, channel, pool, c, args)
        finally:
            await connection.close()
            await pool.close()
    print_row(row, label, stk.settings.temporal_task_queue)
    return row


async def main(args: argparse.Namespace) -> None:
    # stamina's default hook prints a bare "stamina.retry_scheduled" for every wait of the
    # stack's start-up checks; the processes turn it off the same way (configure_logging).
    set_on_retry_hooks([])
    ensure_pusher_js()
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "dev")  # moto takes any credentials; boto insists on some
    base = Settings()
    print(
        f"capacity bench: C in {args.c}, {args.generations} x {args.job_s:.0f}-s jobs per slot,"
        f" a part every {PART_S * 1000:.0f} ms, {args.sample} sampled channels, quiet {QUIET_S:.0f} s"
    )
    variants = [parse_variant(v) for v in args.variant] or [("", {})]
    rows: dict[str, list[Row]] = {name: [] for name, _ in variants}
    # Variants take turns at each C (each on a fresh stack), so the machine's load, which
    # changes over minutes here, falls on all of them alike.
    for c in args.c:
        for name, overrides in variants:
            label = f"[{name}] " if name else ""
            rows[name].append(await run_variant(base, label, overrides, c, args))
    for name, found in rows.items():
        meeting = [r.c for r in found if r.meets_targets()]
        print(
            f"{f'[{name}] ' if name else ''}largest C meeting every target:"
            f" {max(meeting) if meeting else 'none'} (targets: final part -> purged p99 <="
            f" {QUIET_S + 2:.0f} s, live p99 <= 100 ms, 0 lost, archives byte-exact, backlog"
            " back to 0 within 1 s; at least 600, 1,000 the goal)"
        )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--c", type=lambda s: [int(x) for x in s.split(",")], default=[250, 500, 1000, 2000],
        help="concurrent jobs, comma-separated (default 250,500,1000,2000)",
    )  # fmt: skip
    parser.add_argument("--generations", type=int, default=2, help="job lengths per level (2)")
    parser.add_argument("--job-s", type=float, default=60, help="seconds per job (60)")
    parser.add_argument("--sample", type=int, default=50, help="channels watched (50)")
    parser.add_argument(
        "--histories", type=int, default=200, help="workflow histories read per level (200)"
    )
    parser.add_argument(
        "--drain-s", type=float, default=120, help="longest wait for the backlog to drain (120)"
    )
    parser.add_argument(
        "--end-together",
        action="store_true",
        help="cut every slot's last job at the level's end: C final parts at once (a burst)",
    )
    parser.add_argument(
        "--variant", action="append", default=[], metavar="NAME:KEY=VALUE,...",
        help="a configuration to compare (environment of the stack); repeat to compare several",
    )  # fmt: skip
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
