"""`travis-logs simulate`: job logs published as travis-worker publishes them, and what was sent."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import httpx
from aio_pika.abc import AbstractChannel, AbstractExchange
from rich.console import Console

from travis_logs.checks import check_rabbitmq
from travis_logs.errors import ConfigError
from travis_logs.settings import Settings
from travis_logs.simulator.content import ContentOptions
from travis_logs.simulator.faults import FaultOptions
from travis_logs.simulator.job import JobOptions
from travis_logs.simulator.manifest import Manifest, render
from travis_logs.simulator.runner import (
    Simulation,
    SimulationOptions,
    new_seed,
    new_start_job_id,
)
from travis_logs.simulator.sinks import AmqpSink, HttpSink, JwtSigner, PartSink, SinkError
from workers.signals import on_stop_signal
from workflows.models import workflow_id

# --faults: a bit of everything, for trying the system's defences by hand.
FAULTS_PRESET = FaultOptions(
    duplicates=0.1, reorder_window=4, late_parts=2, late_delay_s=1.0, poison=2
)


@dataclass(frozen=True)
class HttpTarget:
    """The API's part routes instead of RabbitMQ."""

    base_url: str
    jwt_key: bytes
    multi: bool = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    jobs = parser.add_argument_group("jobs")
    jobs.add_argument("--jobs", type=_positive, default=1, help="number of jobs (default 1)")
    jobs.add_argument("--concurrency", type=_positive, default=10, help="jobs at once (default 10)")
    jobs.add_argument("--start-job-id", type=_positive, help="first job id (default: now in ms)")
    jobs.add_argument("--seed", type=int, help="seed for reproducible logs (default: random)")
    size = jobs.add_mutually_exclusive_group()
    size.add_argument("--parts", type=_positive, help="exact parts per job, final one included")
    size.add_argument(
        "--log-bytes", type=_positive, default=ContentOptions.log_bytes, help="about this size"
    )
    jobs.add_argument(
        "--speed", type=_at_least_0, default=1.0, help="1: real time (default), 10: 10x, 0: at once"
    )
    jobs.add_argument(
        "--odd-bytes",
        type=_share,
        default=ContentOptions.odd_byte_rate,
        help="share of test lines with bytes that are not UTF-8",
    )
    jobs.add_argument("--no-meta", action="store_true", help='no "meta" on the first part')
    faults = parser.add_argument_group("fault injection (per job)")
    faults.add_argument("--faults", action="store_true", help="a bit of every fault below")
    faults.add_argument("--duplicates", type=_share, help="share of messages sent twice")
    faults.add_argument("--reorder", type=int, help="shuffle within windows of this many")
    faults.add_argument("--late", type=int, help="parts sent after the final part")
    faults.add_argument("--late-delay", type=_at_least_0, help="seconds after the final part")
    faults.add_argument("--poison", type=int, help="messages that are not log parts")
    out = parser.add_argument_group("transport and output")
    out.add_argument("--http", metavar="URL", help="send to the API's part routes, not RabbitMQ")
    out.add_argument("--http-multi", action="store_true", help="POST /log-parts/multi per flush")
    out.add_argument("--jwt-key", type=Path, help="PEM RSA private key for the RS512 tokens")
    out.add_argument("--manifest", type=Path, help="write the manifest (JSON) to this file")
    out.add_argument("--print-links", action="store_true", help="viewer and Temporal UI links")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _at_least_0(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, not {value}")
    return value


def _share(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {value}")
    return value


def options_from_args(args: argparse.Namespace) -> SimulationOptions:
    content = ContentOptions(log_bytes=args.log_bytes, odd_byte_rate=args.odd_bytes)
    job = JobOptions(content, args.parts, args.speed, not args.no_meta, _faults(args))
    return SimulationOptions(
        jobs=args.jobs,
        concurrency=args.concurrency,
        seed=new_seed() if args.seed is None else args.seed,
        start_job_id=args.start_job_id or new_start_job_id(),
        job=job,
    )


def _faults(args: argparse.Namespace) -> FaultOptions:
    base = FAULTS_PRESET if args.faults else FaultOptions()
    return FaultOptions(
        duplicates=base.duplicates if args.duplicates is None else args.duplicates,
        reorder_window=base.reorder_window if args.reorder is None else args.reorder,
        late_parts=base.late_parts if args.late is None else args.late,
        late_delay_s=base.late_delay_s if args.late_delay is None else args.late_delay,
        poison=base.poison if args.poison is None else args.poison,
    )


def http_target(args: argparse.Namespace) -> HttpTarget | None:
    if args.http is None:
        return None
    if args.jwt_key is None:
        raise ConfigError("--http needs --jwt-key: the part routes take RS512 tokens signed by it")
    try:
        key = args.jwt_key.read_bytes()
    except OSError as err:
        raise ConfigError(f"--jwt-key {args.jwt_key}: {err.strerror}") from err
    return HttpTarget(args.http, key, args.http_multi)


def main(args: argparse.Namespace, settings: Settings) -> int:
    options, http = options_from_args(args), http_target(args)
    console = Console()
    if args.print_links:
        print_links(console, settings, options)
    try:
        manifest, complete = asyncio.run(_run_cli(settings, options, http))
    except SinkError as err:
        console.print(f"[red]simulate: {err}[/]")
        return 1
    except asyncio.CancelledError:  # stopped before the first job started
        return 130
    render(manifest, console)
    if args.manifest is not None:
        manifest.write(args.manifest)
    if not complete:
        console.print(
            f"[yellow]stopped: only the {len(manifest.jobs)} jobs sent in full are listed[/]"
        )
    return 0 if complete else 130


async def _run_cli(
    settings: Settings, options: SimulationOptions, http: HttpTarget | None
) -> tuple[Manifest, bool]:
    """Run until done or until SIGTERM/SIGINT; then the manifest holds the jobs sent in full."""
    task = asyncio.current_task()
    assert task is not None
    with on_stop_signal(task.cancel):
        return await _simulate(settings, options, http)


async def _simulate(
    settings: Settings, options: SimulationOptions, http: HttpTarget | None
) -> tuple[Manifest, bool]:
    async with open_sink(settings, http) as sink:
        simulation = Simulation(options, sink)
        try:
            return await _run(simulation), True
        except asyncio.CancelledError:
            return simulation.manifest(), False


async def run(
    settings: Settings, options: SimulationOptions, http: HttpTarget | None = None
) -> Manifest:
    """Simulate `options` against the system `settings` describe (what `travis-logs dev` calls)."""
    async with open_sink(settings, http) as sink:
        return await _run(Simulation(options, sink))


async def _run(simulation: Simulation) -> Manifest:
    try:
        return await simulation.run()
    except* SinkError as group:
        raise group.exceptions[0] from None


@contextlib.asynccontextmanager
async def open_sink(settings: Settings, http: HttpTarget | None) -> AsyncIterator[PartSink]:
    """The entry point's clients: an AMQP channel with publisher confirms, or an HTTP client."""
    if http is not None:
        async with httpx.AsyncClient(base_url=http.base_url, timeout=30) as client:
            yield HttpSink(client, JwtSigner(http.jwt_key), http.multi)
        return
    await check_rabbitmq(str(settings.rabbitmq_url))
    async with await aio_pika.connect(str(settings.rabbitmq_url)) as connection:
        channel = await connection.channel(publisher_confirms=True)
        yield AmqpSink(
            await declare_like_travis_worker(channel, settings), settings.amqp_routing_key
        )


async def declare_like_travis_worker(
    channel: AbstractChannel, settings: Settings
) -> AbstractExchange:
    """travis-worker declares the durable queue and binds it, so parts wait for `ingest`."""
    exchange = await channel.declare_exchange(
        settings.amqp_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    queue = await channel.declare_queue(settings.amqp_queue, durable=True)
    await queue.bind(exchange, settings.amqp_routing_key)
    return exchange


def print_links(console: Console, settings: Settings, options: SimulationOptions) -> None:
    """Where to watch each job: the viewer page and its workflow in the Temporal UI."""
    ui = f"http://127.0.0.1:{settings.dev_temporal_ui_port}/namespaces/{settings.temporal_namespace}/workflows"
    for job_id in options.job_ids[:10]:
        console.print(f"job {job_id}: viewer http://127.0.0.1:{settings.port}/jobs/{job_id}")
        console.print(f"job {job_id}: workflow {ui}/{workflow_id(job_id)}")
