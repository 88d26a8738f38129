"""Ingest throughput against the raw consume rate of the same broker, in one run.

Publishes P parts (about 1.6 KB each, like travis-worker's chunks) for J concurrent jobs,
in chunks, and measures how fast a full queue is drained:

* ingest: `travis-logs ingest` as a subprocess, from its first ack until every message of
  the chunk is acked, which it does only after the parts are committed and their signals
  accepted by Temporal (end to end: publish to committed rows and acked);
* raw: right after each of the first chunks, a bare aio-pika consumer that only acks (one
  ack per message) drains the same number of messages from a queue of its own; its CPU
  per message is the baseline of the ingest's CPU per part (in the same run).

Both drains start from a full queue (the ingest is paused with SIGSTOP while its chunk is
published), so the publisher's speed caps neither, and raw and ingest alternate so that
the load others put on the machine hits both alike. Prints both rates and their ratio,
CPU per message, Temporal signals and history events per job (plus a 10-part and a
10,000-part job), and the ingest's RSS after each chunk: `--parts 1000000 --chunk 100000`
checks that it stays flat over a million parts.

Trickle (`--trickle C`): after the drains, the same ingest takes C jobs at travis-worker's
cadence (2 parts/s each, for `--trickle-s` seconds, then their final parts); its CPU per
part then is printed against its CPU per part draining, with the ratio (target <= 1.5):
the cost of a part that arrives alone (its own socket read, a small batch, a short
`trigger_batch`) against one that arrives in a crowd. Give both phases jobs of the same
length, or the ratio also counts the per-job signals of more, shorter jobs:

    .venv/bin/python bench/ingest.py --parts 24200 --jobs 200 --chunk 12100 --trickle 250 --trickle-s 60

`--compare-delivery` runs a second ingest beside the first with INGEST_DIRECT_DELIVERY=false
(aiormq's public consuming path, a task per delivery) on a queue of its own; the two
alternate chunk by chunk and trickle one after the other, and both rows are printed.

Needs PostgreSQL (DATABASE_URL, migrated by `make bench`) and RabbitMQ (RABBITMQ_URL);
starts its own Temporal dev server and a local Pusher server. The Pusher existence check is
on; `--watched` (0.2) is the share of jobs whose channel somebody watches (their parts are
pushed, signed, to the local server), the rest are queued for Pusher and skipped.
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
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import asyncpg
import httpx
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from prometheus_client.parser import text_string_to_metric_families
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest.topology import declare
from tests.pusher_support import APP, serve, server_config
from travis_logs.binaries import executable
from travis_logs.localpusher.app import create_app
from travis_logs.pusher.occupancy import OccupancyStore
from travis_logs.settings import Settings
from workflows.models import SEARCH_ATTRIBUTES, workflow_id

TEXT_BYTES = 1600  # log text per part, near travis-worker's 1,653-byte chunks
ROUTING_KEY = "reporting.jobs.logs"
ACKED = "travis_logs_ingest_acked_total"


@dataclass(frozen=True)
class Plan:
    """What one run publishes: `parts` for `jobs` interleaved jobs, in chunks."""

    parts: int
    jobs: int
    chunk: int
    raw_rounds: int
    first_job: int
    tag: str
    trickle_jobs: int = 0

    @property
    def small_job(self) -> int:
        return self.first_job + self.jobs

    @property
    def large_job(self) -> int:
        return self.first_job + self.jobs + 1

    @property
    def trickle_first(self) -> int:
        return self.large_job + 1

    @property
    def last_job(self) -> int:
        return self.trickle_first + self.trickle_jobs


@dataclass(frozen=True)
class Drain:
    """One drained chunk: messages, seconds, consumer CPU seconds, consumer RSS MiB."""

    count: int
    seconds: float
    cpu_s: float
    rss_mib: float = 0.0

    @property
    def rate(self) -> float:
        return self.count / self.seconds

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.count * 1e6


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def stream(plan: Plan, start: int, count: int) -> Iterator[bytes]:
    """Parts start..start+count of the run: jobs interleaved, each ending with a final part."""
    per_job = plan.parts // plan.jobs
    text = "".join(random.Random(1).choices("abcdefghij \x1b[0m", k=TEXT_BYTES - 1)) + "\n"
    for i in range(start, start + count):
        job, n = plan.first_job + i % plan.jobs, i // plan.jobs + 1
        final = n == per_job
        body = {"id": job, "log": "" if final else text, "number": n, "final": final, "uuid": "b"}
        yield json.dumps(body).encode()


def trickle_part(job: int, number: int, final: bool) -> bytes:
    text = "" if final else f"{number} " + "x" * (TEXT_BYTES - 12) + "\n"
    body = {"id": job, "log": text, "number": number, "final": final, "uuid": "t"}
    return json.dumps(body).encode()


def sized_jobs(plan: Plan, first: bool) -> Iterator[bytes]:
    """The 10-part and the 10,000-part job: their first parts, or all the others."""
    for job, count in ((plan.small_job, 10), (plan.large_job, 10_000)):
        for n in [1] if first else range(2, count + 1):
            body = {"id": job, "log": f"{n}\n", "number": n, "final": n == count}
            yield json.dumps(body).encode()


async def publish(
    channel: AbstractChannel, exchange: str, key: str, bodies: Iterable[bytes]
) -> int:
    target = await channel.get_exchange(exchange) if exchange else channel.default_exchange
    sent = 0
    for body in bodies:
        message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
        await target.publish(message, routing_key=key)
        sent += 1
    return sent


async def drain_raw(channel: AbstractChannel, queue: AbstractQueue, bodies: list[bytes]) -> Drain:
    """Fill `queue`, then time a consumer that only acks until it has taken everything."""
    await publish(channel, "", queue.name, bodies)
    done = asyncio.Event()
    seen, started, cpu = 0, 0.0, 0.0

    async def on_message(message: AbstractIncomingMessage) -> None:
        nonlocal seen, started, cpu
        if seen == 0:
            started, cpu = time.perf_counter(), time.process_time()
        await message.ack()
        seen += 1
        if seen == len(bodies):
            done.set()

    tag = await queue.consume(on_message)
    await done.wait()
    drain = Drain(len(bodies), time.perf_counter() - started, time.process_time() - cpu)
    await queue.cancel(tag)
    return drain


class IngestProcess:
    """`travis-logs ingest` in a subprocess, observed through /proc and its /metrics."""

    def __init__(self, env: dict[str, str]) -> None:
        port = free_port()
        self.output = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by stop())
        self.process = subprocess.Popen(
            [executable("travis-logs"), "ingest"],
            env={**os.environ, **env, "INGEST_METRICS_PORT": str(port)},
            stdout=self.output,
            stderr=subprocess.STDOUT,
        )
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}")

    def tail(self) -> str:
        self.output.seek(0)
        return "".join(self.output.readlines()[-20:])

    def alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"ingest exited:\n{self.tail()}")

    async def ready(self) -> None:
        for _ in range(600):
            self.alive()
            if "ingest consuming" in self.tail():
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"ingest did not start:\n{self.tail()}")

    async def acked(self) -> float:
        self.alive()
        for family in text_string_to_metric_families((await self.http.get("/metrics")).text):
            for sample in family.samples:
                if sample.name == ACKED:
                    return float(sample.value)
        return 0.0

    async def drain(
        self, channel: AbstractChannel, queue: str, target: float, count: int, cpu: float
    ) -> Drain:
        """Time from the first delivery until `target` acks in all.

        The queue depth is read from the broker, and /metrics only for the last unacked
        batches: serving /metrics 20 times a second cost the ingest 13% of its CPU.
        """
        broker = await channel.get_underlay_channel()
        started = None
        while True:
            ready = (await broker.queue_declare(queue, passive=True)).message_count or 0
            if ready < count and started is None:
                started = time.perf_counter()
            if ready == 0:
                break
            await asyncio.sleep(0.05)
        while True:
            if await self.acked() >= target:
                break
            await asyncio.sleep(0.05)
        seconds = time.perf_counter() - (started or time.perf_counter())
        return Drain(count, seconds, self.cpu_s() - cpu, self.rss_mib())

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def idle_cpu(self, seconds: float = 3.0) -> float:
        """CPU seconds per second while nothing arrives (its timers and background tasks)."""
        cpu = self.cpu_s()
        await asyncio.sleep(seconds)
        return (self.cpu_s() - cpu) / seconds

    async def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(self.process.wait, 30)
        await self.http.aclose()
        self.output.close()


def ingest_env(
    settings: Settings, tag: str, tuning: dict[str, str], pusher_port: int
) -> dict[str, str]:
    return {
        "DATABASE_URL": str(settings.database_url),
        "RABBITMQ_URL": str(settings.rabbitmq_url),
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "TEMPORAL_TASK_QUEUE": f"bench-{tag}",
        "AMQP_EXCHANGE": settings.amqp_exchange,
        "AMQP_QUEUE": settings.amqp_queue,
        "AMQP_ROUTING_KEY": ROUTING_KEY,
        "PUSHER_APP_ID": APP.app_id,
        "PUSHER_KEY": APP.key,
        "PUSHER_SECRET": APP.secret,
        "PUSHER_HOST": "127.0.0.1",
        "PUSHER_PORT": str(pusher_port),
        "PUSHER_SSL": "false",
        "PUSHER_EXISTENCE_CHECK": "true",
        **tuning,
    }


class Bench:
    """One ingest and its queue, and the figures of each chunk (and the trickle) it took."""

    def __init__(
        self,
        channel: AbstractChannel,
        settings: Settings,
        plan: Plan,
        ingest: IngestProcess,
        name: str = "ingest",
    ) -> None:
        self.channel, self.settings, self.plan, self.ingest = channel, settings, plan, ingest
        self.name = name
        self.ingest_drains: list[Drain] = []
        self.raw_drains: list[Drain] = []
        self.trickles: list[Drain] = []
        self.acked = 0.0

    async def start(self) -> None:
        """The first parts of the 10-part and the 10,000-part jobs."""
        await publish(
            self.channel, self.settings.amqp_exchange, ROUTING_KEY, sized_jobs(self.plan, True)
        )
        self.acked = 2.0

    async def chunk(self, index: int, raw: AbstractQueue | None) -> None:
        """Drain chunk `index` (the last one with the sized jobs' other parts); then `raw`."""
        start = index * self.plan.chunk
        bodies = list(stream(self.plan, start, min(self.plan.chunk, self.plan.parts - start)))
        if start + self.plan.chunk >= self.plan.parts:
            bodies += sized_jobs(self.plan, False)
        self.acked += len(bodies)
        self.ingest_drains.append(await self._ingest_chunk(bodies))
        if raw is not None and index < self.plan.raw_rounds:
            self.raw_drains.append(await drain_raw(self.channel, raw, bodies))
        self._print_chunk(index)

    async def _ingest_chunk(self, bodies: list[bytes]) -> Drain:
        ingest = self.ingest
        cpu = ingest.cpu_s()
        ingest.process.send_signal(signal.SIGSTOP)  # let the queue fill, then drain it
        try:
            await publish(self.channel, self.settings.amqp_exchange, ROUTING_KEY, bodies)
        finally:
            ingest.process.send_signal(signal.SIGCONT)
        return await ingest.drain(
            self.channel, self.settings.amqp_queue, self.acked, len(bodies), cpu
        )

    async def trickle(self, seconds: float) -> None:
        """`trickle_jobs` jobs at 2 parts/s each for `seconds`, then their final parts;
        the ingest's CPU from the first publish until the last part is acked."""
        jobs, rate = self.plan.trickle_jobs, 2.0 * self.plan.trickle_jobs
        per_job = max(1, int(seconds * 2))
        exchange = await self.channel.get_exchange(self.settings.amqp_exchange)
        idle = await self.ingest.idle_cpu()
        cpu, started = self.ingest.cpu_s(), time.perf_counter()
        for i in range(jobs * (per_job + 1)):
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            number = i // jobs + 1
            body = trickle_part(self.plan.trickle_first + i % jobs, number, number > per_job)
            message = aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            await exchange.publish(message, routing_key=ROUTING_KEY)
        count = jobs * (per_job + 1)
        self.acked += count
        published = time.perf_counter()
        while True:
            if await self.ingest.acked() >= self.acked:
                break
            # A scrape of /metrics costs the ingest milliseconds of CPU (every series is
            # rendered): polled 20 times a second while a loaded machine kept it seconds
            # behind, the scrapes became part of its CPU per part (785 in one run). The
            # wait is measured to a tenth of its length instead.
            await asyncio.sleep(min(0.5, max(0.05, (time.perf_counter() - published) / 10)))
        elapsed = time.perf_counter() - started
        late = elapsed - count / rate
        drain = Drain(count, elapsed, self.ingest.cpu_s() - cpu, self.ingest.rss_mib())
        self.trickles.append(drain)
        print(
            f"  {self.name} trickle: {count} parts of {jobs} jobs at {rate:.0f} parts/s,"
            f" {drain.cpu_us:.0f} us CPU/part (last ack {late:.2f} s after the last publish);"
            f" idle before it, {idle * 1e3:.1f} ms CPU/s ({idle / rate * 1e6:.0f} us a part)"
        )

    def _print_chunk(self, index: int) -> None:
        d = self.ingest_drains[index]
        line = (
            f"  chunk {index + 1}: {self.name} {d.rate:7.0f} parts/s, {d.cpu_us:5.0f} us CPU/part"
        )
        if index < len(self.raw_drains):
            r = self.raw_drains[index]
            line += f", raw {r.rate:7.0f} msg/s, ratio {d.rate / r.rate:.2f}"
        print(f"{line}, RSS {d.rss_mib:.1f} MiB")

    def drain_cpu_us(self) -> float:
        return statistics.median(d.cpu_us for d in self.ingest_drains)


def print_trickle(benches: list[Bench], trickle_s: float) -> None:
    """Per ingest: CPU per part trickling against draining; with two, delivery against delivery.

    A job costs two signal-with-starts (its first and its final part) however its parts
    arrive, so the ratio compares arrivals only when both phases' jobs have as many parts:
    `--parts` = `--jobs` x (2 x `--trickle-s` + 1). It is printed either way, with both.
    """
    for b in benches:
        if b.trickles:
            trickle, drain = b.trickles[-1].cpu_us, b.drain_cpu_us()
            drained, trickled = b.plan.parts // b.plan.jobs, max(1, int(trickle_s * 2)) + 1
            shape = "same" if drained == trickled else "NOT the same: signals per part differ"
            print(
                f"{b.name + ' trickle/drain:':28s}{trickle:6.0f} against {drain:4.0f} us CPU/part,"
                f" ratio {trickle / drain:.2f} (target <= 1.50); parts per job {trickled}"
                f" against {drained} ({shape})"
            )
    if len(benches) == 2:
        (a, b) = benches
        print(
            f"{'CPU/part ' + a.name + '/' + b.name + ' drain:':28s}{a.drain_cpu_us() / b.drain_cpu_us():6.2f}"
            f" ({a.drain_cpu_us():.0f} against {b.drain_cpu_us():.0f} us)"
        )
        if a.trickles and b.trickles:
            ta, tb = a.trickles[-1].cpu_us, b.trickles[-1].cpu_us
            print(
                f"{'CPU/part ' + a.name + '/' + b.name + ' trickle:':28s}{ta / tb:6.2f}"
                f" ({ta:.0f} against {tb:.0f} us)"
            )


async def history_stats(client: Client, jobs: Iterable[int]) -> list[tuple[int, int]]:
    """(signals, history events) of each job's workflow."""
    stats = []
    for job in jobs:
        history = await client.get_workflow_handle(workflow_id(job)).fetch_history()
        kinds = [e.event_type for e in history.events]
        stats.append((kinds.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED), len(kinds)))
    return stats


async def print_figures(bench: Bench, client: Client, pool: asyncpg.Pool) -> None:
    plan, ingest, raw = bench.plan, bench.ingest_drains, bench.raw_drains
    ratios = [i.rate / r.rate for i, r in zip(ingest, raw, strict=False)]
    print(
        f"raw consume (ack only): {statistics.median(r.rate for r in raw):8.0f} msg/s   CPU {statistics.median(r.cpu_us for r in raw):.0f} us/msg"
    )
    print(
        f"ingest end-to-end:      {statistics.median(i.rate for i in ingest):8.0f} parts/s CPU {statistics.median(i.cpu_us for i in ingest):.0f} us/part"
    )
    print(
        f"ratio ingest/raw:       {statistics.median(ratios):8.2f} (median of {len(ratios)} rounds; target >= 0.70)"
    )
    cpu_ratios = [i.cpu_us / r.cpu_us for i, r in zip(ingest, raw, strict=False)]
    print(
        f"CPU ingest/raw:         {statistics.median(cpu_ratios):8.2f} per part (median of {len(cpu_ratios)} rounds; target <= 0.60)"
    )
    stored = await pool.fetchval(
        "SELECT count(*) FROM log_parts p JOIN logs l ON l.id = p.log_id"
        " WHERE l.job_id BETWEEN $1 AND $2",
        plan.first_job,
        plan.large_job,
    )
    print(f"rows stored:            {stored} of {plan.parts // plan.jobs * plan.jobs + 10_010}")
    jobs = await history_stats(client, range(plan.first_job, plan.small_job))
    print(
        f"signals per job:        max {max(s for s, _ in jobs)}, mean {statistics.mean(s for s, _ in jobs):.2f}"
    )
    print(
        f"history events per job: max {max(e for _, e in jobs)}, mean {statistics.mean(e for _, e in jobs):.2f}"
    )
    (small, large) = await history_stats(client, (plan.small_job, plan.large_job))
    print(f"10-part job:            {small[0]} signals, {small[1]} history events")
    print(f"10,000-part job:        {large[0]} signals, {large[1]} history events")
    rss = [i.rss_mib for i in ingest]
    print(
        f"ingest RSS:             {rss[0]:.1f} MiB after chunk 1, {rss[-1]:.1f} MiB after chunk {len(rss)} ({100 * (rss[-1] / rss[0] - 1):+.1f}%)"
    )


@contextlib.asynccontextmanager
async def services(
    settings: Settings, variants: list[tuple[Settings, Plan]]
) -> AsyncIterator[tuple[Client, AbstractChannel, asyncpg.Pool, int]]:
    """A Temporal dev server, a broker channel, a database pool and a local Pusher server
    (its port); the queues, rows and watched channels of `variants` are removed after."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=executable("temporal"), search_attributes=SEARCH_ATTRIBUTES
    )
    pool = await asyncpg.create_pool(str(settings.database_url), min_size=1, max_size=2)
    assert pool is not None
    connection = await aio_pika.connect(str(settings.rabbitmq_url))
    try:
        channel = await connection.channel(publisher_confirms=False)
        async with serve(create_app(server_config())) as pusher_port:
            yield env.client, channel, pool, pusher_port
    finally:
        for config, plan in variants:
            for name in (config.amqp_queue, f"{config.amqp_queue}.dead"):
                await channel.queue_delete(name)
            for name in (config.amqp_exchange, f"{config.amqp_exchange}.dead"):
                await channel.exchange_delete(name)
            for table in ("logs", "signal_outbox"):
                await pool.execute(
                    f"DELETE FROM {table} WHERE job_id BETWEEN $1 AND $2",
                    plan.first_job,
                    plan.last_job,
                )
            await pool.execute(
                "DELETE FROM pusher_channels WHERE channel = ANY($1::text[])",
                [f"job-{j}" for j in range(plan.first_job, plan.last_job + 1)],
            )
        await connection.close()
        await pool.close()
        await env.shutdown()


async def watch(pool: asyncpg.Pool, plan: Plan, share: float) -> None:
    """Mark every 1/share-th job's channel as watched, of the drained and the trickling jobs."""
    if share <= 0:
        return
    step = max(1, round(1 / share))
    jobs = [*range(plan.first_job, plan.first_job + plan.jobs, step)]
    jobs += range(plan.trickle_first, plan.trickle_first + plan.trickle_jobs, step)
    store = OccupancyStore(pool)
    for job in jobs:
        await store.mark(f"job-{job}", True)


@contextlib.contextmanager
def profiled(pid: int, path: str | None) -> Iterator[None]:
    """Sample `pid` with py-spy (collapsed stacks into `path`) while the body runs."""
    if not path:
        yield
        return
    spy = subprocess.Popen(
        [
            shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
            or "py-spy",
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
        ]
        + ["--rate", "250", "--output", path, "--nonblocking"],
        stdout=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(30)


def _frame(raw: str) -> str:
    """`function (path/file.py:line)` as `function file.py`: one entry per function."""
    function, _, where = raw.partition(" (")
    return f"{function} {where.rsplit('/', 1)[-1].rsplit(':', 1)[0]}"


def print_profile(path: str, phase: str, top: int = 25) -> None:
    """The functions most samples were in (inclusive) and on top of (self), in per cent."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in Path(path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [_frame(f) for f in stack.split(";")]
        n = int(count)
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    print(f"profile: {total} samples of the ingest process {phase}")
    for title, counts in (("self", own), ("inclusive", inclusive)):
        print(f"  top {top} by {title}:")
        for frame, n in counts.most_common(top):
            print(f"    {100 * n / total:5.1f}%  {frame}")


async def main(args: argparse.Namespace) -> None:
    names = ["direct", "task"] if args.compare_delivery else ["ingest"]
    first = random.randrange(10**12, 2 * 10**12)
    variants = []
    for index, _ in enumerate(names):
        tag = uuid.uuid4().hex[:8]
        plan = Plan(
            args.parts,
            args.jobs,
            args.chunk or args.parts,
            args.raw_rounds,
            first + index * 10**7,
            tag,
            args.trickle,
        )
        config = Settings().model_copy(
            update={"amqp_exchange": f"bench-{tag}", "amqp_queue": f"bench.logs-{tag}"}
        )
        variants.append((config, plan))
    tuning = {
        k: str(v)
        for k, v in (
            ("INGEST_BATCH_SIZE", args.batch_size),
            ("INGEST_BATCH_MS", args.batch_ms),
            ("AMQP_PREFETCH", args.prefetch),
        )
        if v
    }
    plan = variants[0][1]
    print(
        f"ingest bench: {plan.parts} parts of ~{TEXT_BYTES} B for {plan.jobs} jobs in chunks of {plan.chunk}; {tuning or 'default settings'}; {args.watched:.0%} of channels watched"
    )
    async with services(variants[0][0], variants) as (client, channel, pool, pusher_port):
        address = client.service_client.config.target_host
        benches = []
        try:
            for name, (config, plan) in zip(names, variants, strict=True):
                config = config.model_copy(update={"temporal_address": address})
                await declare(channel, config)
                await watch(pool, plan, args.watched)
                env = ingest_env(config, plan.tag, tuning, pusher_port)
                env["INGEST_DIRECT_DELIVERY"] = str(name != "task").lower()
                benches.append(Bench(channel, config, plan, IngestProcess(env), name))
            raw = await channel.declare_queue(f"bench.raw-{plan.tag}", exclusive=True)
            await channel.set_qos(prefetch_count=args.prefetch or Settings().amqp_prefetch)
            for b in benches:
                await b.ingest.ready()
                await b.start()
            pid = benches[0].ingest.process.pid
            with profiled(pid, args.profile):
                for index in range(-(-plan.parts // plan.chunk)):
                    for b in benches:
                        await b.chunk(index, raw if b is benches[0] else None)
            if args.trickle:
                with profiled(pid, args.profile_trickle):
                    for b in benches:
                        await b.trickle(args.trickle_s)
        finally:
            for b in benches:
                await b.ingest.stop()
        for path, phase in ((args.profile, "draining"), (args.profile_trickle, "trickling")):
            if path:
                print_profile(path, phase)
        await print_figures(benches[0], client, pool)
        print_trickle(benches, args.trickle_s)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--parts", type=int, default=60_000, help="parts published (default 60,000)"
    )
    parser.add_argument("--jobs", type=int, default=100, help="concurrent jobs (default 100)")
    parser.add_argument(
        "--chunk", type=int, default=20_000, help="parts per chunk (default 20,000)"
    )
    parser.add_argument(
        "--raw-rounds", type=int, default=3, help="chunks followed by a raw drain (default 3)"
    )
    parser.add_argument(
        "--trickle", type=int, default=0, metavar="C", help="then C jobs at 2 parts/s each"
    )
    parser.add_argument(
        "--trickle-s", type=float, default=60, help="seconds of trickle per job (default 60)"
    )
    parser.add_argument(
        "--watched", type=float, default=0.2, help="share of channels watched (default 0.2)"
    )
    parser.add_argument(
        "--compare-delivery",
        action="store_true",
        help="a second ingest with INGEST_DIRECT_DELIVERY=false beside the first",
    )
    parser.add_argument("--batch-size", type=int, help="INGEST_BATCH_SIZE")
    parser.add_argument("--batch-ms", type=int, help="INGEST_BATCH_MS")
    parser.add_argument("--prefetch", type=int, help="AMQP_PREFETCH of both consumers")
    parser.add_argument(
        "--profile",
        metavar="PATH",
        help="sample the ingest with py-spy while it drains; collapsed stacks to PATH",
    )
    parser.add_argument(
        "--profile-trickle",
        metavar="PATH",
        help="the same while it takes the trickle (of the first ingest)",
    )
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
