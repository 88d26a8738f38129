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

Needs PostgreSQL (DATABASE_URL, migrated by `make bench`) and RabbitMQ (RABBITMQ_URL);
starts its own Temporal dev server. The Pusher existence check is on with nobody watching,
the common case in production: every part is queued for Pusher and skipped.
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
from travis_logs.binaries import executable
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

    @property
    def small_job(self) -> int:
        return self.first_job + self.jobs

    @property
    def large_job(self) -> int:
        return self.first_job + self.jobs + 1


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

    async def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(self.process.wait, 30)
        await self.http.aclose()
        self.output.close()


def ingest_env(settings: Settings, tag: str, tuning: dict[str, str]) -> dict[str, str]:
    return {
        "DATABASE_URL": str(settings.database_url),
        "RABBITMQ_URL": str(settings.rabbitmq_url),
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "TEMPORAL_TASK_QUEUE": f"bench-{tag}",
        "AMQP_EXCHANGE": settings.amqp_exchange,
        "AMQP_QUEUE": settings.amqp_queue,
        "AMQP_ROUTING_KEY": ROUTING_KEY,
        "PUSHER_APP_ID": "1",
        "PUSHER_KEY": "bench",
        "PUSHER_SECRET": "bench",
        "PUSHER_HOST": "127.0.0.1",
        "PUSHER_PORT": str(free_port()),
        "PUSHER_SSL": "false",
        "PUSHER_EXISTENCE_CHECK": "true",
        **tuning,
    }


class Bench:
    """One run: the ingest subprocess, a raw queue beside it, and the figures of each chunk."""

    def __init__(self, channel: AbstractChannel, settings: Settings, plan: Plan) -> None:
        self.channel, self.settings, self.plan = channel, settings, plan
        self.ingest_drains: list[Drain] = []
        self.raw_drains: list[Drain] = []

    async def run(self, ingest: IngestProcess, raw: AbstractQueue) -> None:
        await publish(
            self.channel, self.settings.amqp_exchange, ROUTING_KEY, sized_jobs(self.plan, True)
        )
        acked = 2.0
        for index, start in enumerate(range(0, self.plan.parts, self.plan.chunk)):
            bodies = list(stream(self.plan, start, min(self.plan.chunk, self.plan.parts - start)))
            if start + self.plan.chunk >= self.plan.parts:
                bodies += sized_jobs(self.plan, False)
            acked += len(bodies)
            self.ingest_drains.append(await self._ingest_chunk(ingest, bodies, acked))
            if index < self.plan.raw_rounds:
                self.raw_drains.append(await drain_raw(self.channel, raw, bodies))
            self._print_chunk(index)

    async def _ingest_chunk(
        self, ingest: IngestProcess, bodies: list[bytes], target: float
    ) -> Drain:
        cpu = ingest.cpu_s()
        ingest.process.send_signal(signal.SIGSTOP)  # let the queue fill, then drain it
        try:
            await publish(self.channel, self.settings.amqp_exchange, ROUTING_KEY, bodies)
        finally:
            ingest.process.send_signal(signal.SIGCONT)
        return await ingest.drain(self.channel, self.settings.amqp_queue, target, len(bodies), cpu)

    def _print_chunk(self, index: int) -> None:
        d = self.ingest_drains[index]
        line = f"  chunk {index + 1}: ingest {d.rate:7.0f} parts/s"
        if index < len(self.raw_drains):
            r = self.raw_drains[index]
            line += f", raw {r.rate:7.0f} msg/s, ratio {d.rate / r.rate:.2f}"
        print(f"{line}, ingest RSS {d.rss_mib:.1f} MiB")


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
    settings: Settings, plan: Plan
) -> AsyncIterator[tuple[Client, AbstractChannel, asyncpg.Pool]]:
    """A Temporal dev server, a broker channel with the bench's queues, a database pool."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=executable("temporal"), search_attributes=SEARCH_ATTRIBUTES
    )
    pool = await asyncpg.create_pool(str(settings.database_url), min_size=1, max_size=2)
    assert pool is not None
    connection = await aio_pika.connect(str(settings.rabbitmq_url))
    try:
        channel = await connection.channel(publisher_confirms=False)
        yield env.client, channel, pool
    finally:
        for name in (settings.amqp_queue, f"{settings.amqp_queue}.dead"):
            await channel.queue_delete(name)
        for name in (settings.amqp_exchange, f"{settings.amqp_exchange}.dead"):
            await channel.exchange_delete(name)
        await connection.close()
        await pool.execute(
            "DELETE FROM logs WHERE job_id BETWEEN $1 AND $2", plan.first_job, plan.large_job
        )
        await pool.execute(
            "DELETE FROM signal_outbox WHERE job_id BETWEEN $1 AND $2",
            plan.first_job,
            plan.large_job,
        )
        await pool.close()
        await env.shutdown()


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


def print_profile(path: str, top: int = 25) -> None:
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
    print(f"profile: {total} samples of the ingest process")
    for title, counts in (("self", own), ("inclusive", inclusive)):
        print(f"  top {top} by {title}:")
        for frame, n in counts.most_common(top):
            print(f"    {100 * n / total:5.1f}%  {frame}")


async def main(args: argparse.Namespace) -> None:
    tag = uuid.uuid4().hex[:8]
    plan = Plan(
        args.parts,
        args.jobs,
        args.chunk or args.parts,
        args.raw_rounds,
        random.randrange(10**12, 2 * 10**12),
        tag,
    )
    settings = Settings().model_copy(
        update={"amqp_exchange": f"bench-{tag}", "amqp_queue": f"bench.logs-{tag}"}
    )
    tuning = {
        k: str(v)
        for k, v in (
            ("INGEST_BATCH_SIZE", args.batch_size),
            ("INGEST_BATCH_MS", args.batch_ms),
            ("AMQP_PREFETCH", args.prefetch),
        )
        if v
    }
    print(
        f"ingest bench: {plan.parts} parts of ~{TEXT_BYTES} B for {plan.jobs} jobs in chunks of {plan.chunk}; {tuning or 'default settings'}"
    )
    async with services(settings, plan) as (client, channel, pool):
        settings = settings.model_copy(
            update={"temporal_address": client.service_client.config.target_host}
        )
        await declare(channel, settings)
        raw = await channel.declare_queue(f"bench.raw-{tag}", exclusive=True)
        await channel.set_qos(prefetch_count=args.prefetch or settings.amqp_prefetch)
        ingest = IngestProcess(ingest_env(settings, tag, tuning))
        bench = Bench(channel, settings, plan)
        try:
            await ingest.ready()
            with profiled(ingest.process.pid, args.profile):
                await bench.run(ingest, raw)
        finally:
            await ingest.stop()
        if args.profile:
            print_profile(args.profile)
        await print_figures(bench, client, pool)


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
    parser.add_argument("--batch-size", type=int, help="INGEST_BATCH_SIZE")
    parser.add_argument("--batch-ms", type=int, help="INGEST_BATCH_MS")
    parser.add_argument("--prefetch", type=int, help="AMQP_PREFETCH of both consumers")
    parser.add_argument(
        "--profile", metavar="PATH", help="sample the ingest with py-spy; collapsed stacks to PATH"
    )
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
