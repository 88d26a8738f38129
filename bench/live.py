"""Live streaming figures: RabbitMQ to pusher-js latency, fan-out, and the publisher's linger.

1. latency: `travis-logs ingest` and `travis-logs pusher-server` run as subprocesses; a real
   pusher-js client (node) subscribes to 50 channels; parts of about 1.6 KB are published to
   RabbitMQ at 1,000/s, each carrying its publish time; p50/p99 of (pusher-js receipt -
   AMQP publish). Run once per PUSHER_LINGER_MS (0 and 10) and ingest batch window.
2. fan-out: 1,000 pusher-js sockets subscribe to one channel; one event is triggered; how
   many sockets got it and when the last one did.
3. linger: the publisher alone pushes a burst of parts to the server with each linger:
   events/s and mean trigger_batch call time.

Needs PostgreSQL (DATABASE_URL, migrated by `make bench`), RabbitMQ, node and npm; starts
its own Temporal dev server. Targets: p50 <= 20 ms, p99 <= 100 ms, no socket missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractExchange
from prometheus_client import REGISTRY
from temporalio.testing import WorkflowEnvironment

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest.topology import declare
from tests.helpers import free_port
from tests.pusher_support import APP, PusherJs, ensure_pusher_js, pusher_settings, rest_client
from travis_logs.binaries import executable
from travis_logs.checks import wait_for_port
from travis_logs.parts import LogPart
from travis_logs.pusher.publisher import build_publisher
from travis_logs.settings import Settings
from workflows.models import SEARCH_ATTRIBUTES

PAD = "x" * 1580  # the rest of a ~1.6 KB part, like travis-worker's chunks


@dataclass(frozen=True)
class Run:
    settings: Settings
    linger_ms: int
    batch_ms: int
    tag: str

    def env(self, pusher_port: int) -> dict[str, str]:
        s = self.settings
        return {
            **os.environ,
            "DATABASE_URL": str(s.database_url),
            "RABBITMQ_URL": str(s.rabbitmq_url),
            "TEMPORAL_ADDRESS": s.temporal_address,
            "TEMPORAL_TASK_QUEUE": f"bench-{self.tag}",
            "AMQP_EXCHANGE": f"bench-{self.tag}",
            "AMQP_QUEUE": f"bench.live-{self.tag}",
            "INGEST_BATCH_MS": str(self.batch_ms),
            "PUSHER_APP_ID": APP.app_id,
            "PUSHER_KEY": APP.key,
            "PUSHER_SECRET": APP.secret,
            "PUSHER_HOST": "127.0.0.1",
            "PUSHER_PORT": str(pusher_port),
            "PUSHER_SSL": "false",
            "PUSHER_LINGER_MS": str(self.linger_ms),
            "PUSHER_EXISTENCE_CHECK": "false",
            "DEV_PUSHER_PORT": str(pusher_port),
        }


@contextlib.asynccontextmanager
async def command(name: str, env: dict[str, str]) -> AsyncIterator[None]:
    """`travis-logs <name>` as a subprocess, stopped with SIGTERM."""
    process = await asyncio.create_subprocess_exec(
        executable("travis-logs"), "--log-level", "WARNING", name, env=env
    )
    try:
        yield
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)


@contextlib.asynccontextmanager
async def pusher_server(env: dict[str, str], port: int) -> AsyncIterator[None]:
    async with command("pusher-server", env):
        await wait_for_port("127.0.0.1", port, "pusher-server")
        yield


@contextlib.asynccontextmanager
async def broker(run: Run) -> AsyncIterator[tuple[AbstractExchange, str]]:
    """The run's exchange (declared as ingest declares it) and routing key; removed after."""
    connection = await aio_pika.connect(str(run.settings.rabbitmq_url))
    async with connection:
        channel = await connection.channel(publisher_confirms=False)
        settings = run.settings.model_copy(
            update={"amqp_exchange": f"bench-{run.tag}", "amqp_queue": f"bench.live-{run.tag}"}
        )
        topology = await declare(channel, settings)
        try:
            yield topology.exchange, settings.amqp_routing_key
        finally:
            for queue in (topology.queue, topology.dead_queue):
                await queue.delete(if_unused=False, if_empty=False)
            for exchange in (topology.exchange, topology.dead_exchange):
                await exchange.delete()


async def publish_paced(
    exchange: AbstractExchange, key: str, jobs: list[int], rate: int, seconds: float
) -> int:
    """Publish `rate` parts/s for `seconds`, each stamped with its publish time in ms."""
    total, started = int(rate * seconds), time.perf_counter()
    for i in range(total):
        # Keep to the schedule: sleep until this part's slot comes.
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        job, number = jobs[i % len(jobs)], 2 + i // len(jobs)
        text = f"t={time.time() * 1000:.3f};{PAD}"
        body = json.dumps({"id": job, "log": text, "number": number, "final": False})
        await exchange.publish(aio_pika.Message(body.encode()), routing_key=key)
    return total


async def warm_up(exchange: AbstractExchange, key: str, jobs: list[int], js: PusherJs) -> None:
    """Part 1 of every job: starts its workflow (signal-with-start) before the clock runs."""
    for job in jobs:
        body = json.dumps({"id": job, "log": "warm-up", "number": 1, "final": False})
        await exchange.publish(aio_pika.Message(body.encode()), routing_key=key)
    await js.wait_for(lambda c: len(c.of_kind("event")) >= len(jobs), timeout=60)


async def latency_run(run: Run, rate: int, seconds: float, channels: int) -> list[float]:
    """Milliseconds from AMQP publish to pusher-js receipt, one per part received."""
    port = free_port()
    env = run.env(port)
    jobs = [10**9 + int(uuid.uuid4().int % 10**6) * 100 + i for i in range(channels)]
    async with (
        broker(run) as (exchange, key),
        pusher_server(env, port),
        command("ingest", env),
        PusherJs.run(port, [f"job-{j}" for j in jobs], brief=True) as js,
    ):
        await js.ready()
        await warm_up(exchange, key, jobs, js)
        sent = await publish_paced(exchange, key, jobs, rate, seconds)
        with contextlib.suppress(TimeoutError):
            await js.wait_for(lambda c: len(c.of_kind("event")) >= sent + len(jobs), timeout=30)
    stamped = [e["t"] - e["stamp"] for e in js.of_kind("event") if e.get("stamp") is not None]
    print(f"  received {len(stamped)} of {sent} parts")
    return stamped


async def fan_out(sockets: int) -> tuple[int, float]:
    """(sockets that got the event, ms until the last one did) for one event."""
    port = free_port()
    async with (
        pusher_server(server_env(port), port),
        PusherJs.run(port, ["job-1"], clients=sockets) as js,
    ):
        await js.ready(timeout=120)
        sent_at = time.time() * 1000
        await asyncio.to_thread(rest_client(port).trigger, ["job-1"], "job:log", "hello ✊")
        with contextlib.suppress(TimeoutError):
            await js.wait_for(lambda c: len(c.of_kind("event")) >= sockets, timeout=30)
    events = js.of_kind("event")
    return len({e["client"] for e in events}), max((e["t"] for e in events), default=0) - sent_at


def _sample(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


def server_env(port: int) -> dict[str, str]:
    return {
        **os.environ,
        "PUSHER_APP_ID": APP.app_id,
        "PUSHER_KEY": APP.key,
        "PUSHER_SECRET": APP.secret,
        "DEV_PUSHER_PORT": str(port),
    }


async def burst(settings: Settings, parts: int) -> tuple[float, float]:
    """(events/s, mean ms per trigger_batch call) pushing `parts` at once for 50 jobs."""
    publisher = build_publisher(settings, None)
    calls = _sample("travis_logs_pusher_request_seconds_count")
    seconds = _sample("travis_logs_pusher_request_seconds_sum")
    started = time.perf_counter()
    await publisher.publish([LogPart(n % 50, n, PAD, False) for n in range(parts)])
    await publisher.flush()
    elapsed = time.perf_counter() - started
    await publisher.aclose()
    calls = _sample("travis_logs_pusher_request_seconds_count") - calls
    seconds = _sample("travis_logs_pusher_request_seconds_sum") - seconds
    return parts / elapsed, 1000 * seconds / max(calls, 1)


@contextlib.asynccontextmanager
async def distant(port: int, rtt_s: float) -> AsyncIterator[int]:
    """A TCP proxy to `port` that delays each direction by rtt/2 and each new connection by
    one round trip (its TCP handshake; TLS to Pusher would add more), like a distant Pusher."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(1 << 16):
                await asyncio.sleep(rtt_s / 2)
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(rtt_s)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def compare_lingers(base: Settings, parts: int, rounds: int, rtt_ms: float) -> None:
    """Bursts with each linger, interleaved so that machine noise hits both; medians printed."""
    port = free_port()
    results: dict[int, list[tuple[float, float]]] = {0: [], 10: []}
    async with pusher_server(server_env(port), port), distant(port, rtt_ms / 1000) as via:
        settings = pusher_settings(
            base, via if rtt_ms else port, pusher_queue_size=parts * 2, pusher_timeout_s=10.0
        )
        for _ in range(rounds):
            for linger, runs in results.items():
                update = {"pusher_linger_ms": linger}
                runs.append(await burst(settings.model_copy(update=update), parts))
    for linger, runs in results.items():
        rate = statistics.median(r for r, _ in runs)
        call_ms = statistics.median(c for _, c in runs)
        print(f"  linger {linger:2d} ms {rate:8.0f} events/s   {call_ms:6.2f} ms per trigger_batch")


def percentile(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(p) - 1]


def report(ms: list[float]) -> None:
    print(
        f"  p50 {percentile(ms, 50):6.1f} ms   p99 {percentile(ms, 99):6.1f} ms"
        f"   max {max(ms):6.1f} ms"
    )


async def direct_run(base: Settings, linger: int, rate: int, seconds: float) -> list[float]:
    """Milliseconds from publisher.publish to pusher-js receipt, without ingest and RabbitMQ."""
    port = free_port()
    settings = pusher_settings(base, port).model_copy(update={"pusher_linger_ms": linger})
    channels = [f"job-{j}" for j in range(1, 51)]
    async with (
        pusher_server(server_env(port), port),
        PusherJs.run(port, channels, brief=True) as js,
    ):
        await js.ready()
        publisher = build_publisher(settings, None)
        total, started = int(rate * seconds), time.perf_counter()
        for i in range(0, total, 10):  # ingest hands parts over in batches
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            text = f"t={time.time() * 1000:.3f};{PAD}"
            await publisher.publish([LogPart(1 + (i + k) % 50, i, text, False) for k in range(10)])
        with contextlib.suppress(TimeoutError):
            await js.wait_for(lambda c: len(c.of_kind("event")) >= total, timeout=30)
        await publisher.aclose()
    return [e["t"] - e["stamp"] for e in js.of_kind("event")]


async def lingers_section(args: argparse.Namespace, base: Settings) -> None:
    for rtt_ms in (0, args.rtt_ms):
        where = f"through a proxy adding {rtt_ms:g} ms RTT" if rtt_ms else "on loopback"
        print(f"== lingers: bursts of {args.burst} parts for 50 jobs {where} (median of 3)")
        await compare_lingers(base, args.burst, rounds=3, rtt_ms=rtt_ms)
    for linger in (0, 10):
        print(f"== publisher -> pusher-js, {args.rate} parts/s, 50 channels, linger {linger} ms")
        report(await direct_run(base, linger, args.rate, args.seconds))


async def latency_section(args: argparse.Namespace, base: Settings) -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=executable("temporal"), search_attributes=SEARCH_ATTRIBUTES
    )
    try:
        address = env.client.service_client.config.target_host
        settings = base.model_copy(update={"temporal_address": address})
        for batch_ms in args.batch_ms:
            for linger in (0, 10):
                print(
                    f"== AMQP publish -> ingest -> pusher-js: {args.rate} parts/s for"
                    f" {args.seconds:g} s, {args.channels} channels, linger {linger} ms,"
                    f" INGEST_BATCH_MS={batch_ms}"
                )
                run = Run(settings, linger, batch_ms, uuid.uuid4().hex[:8])
                report(await latency_run(run, args.rate, args.seconds, args.channels))
    finally:
        await env.shutdown()


async def main(args: argparse.Namespace) -> None:
    ensure_pusher_js()
    base = Settings()
    await lingers_section(args, base)
    await latency_section(args, base)
    got, last_ms = await fan_out(args.sockets)
    print(f"== fan-out: one event to {args.sockets} pusher-js sockets")
    print(f"  delivered to {got} of {args.sockets}, last after {last_ms:.0f} ms")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=1000, help="parts/s published (1000)")
    parser.add_argument("--seconds", type=float, default=5, help="publishing time (5)")
    parser.add_argument("--channels", type=int, default=50, help="jobs watched (50)")
    parser.add_argument("--sockets", type=int, default=1000, help="fan-out sockets (1000)")
    parser.add_argument("--burst", type=int, default=3000, help="parts per linger burst")
    parser.add_argument("--rtt-ms", type=float, default=20, help="simulated Pusher RTT (20)")
    parser.add_argument(
        "--batch-ms", type=int, nargs="+", default=[50, 10], help="INGEST_BATCH_MS values"
    )
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
