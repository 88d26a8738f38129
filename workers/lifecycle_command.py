"""What `rearchive` and `force-aggregate` share: target selection, limits, progress, report.

Targets are job ids, or every log workflow a visibility query selects (for example
`--query 'LogState="verify_failed"'`). Each one gets the workflow update, at most
`--concurrency` at a time and `--rate` a second. Exit code 1 when any update failed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from temporalio.client import Client

from travis_logs.errors import ConfigError
from travis_logs.ratelimit import RateLimiter
from travis_logs.settings import Settings
from travis_logs.temporal import connect
from workers.preflight import preflight
from workflows.operations import UpdateOutcome, lifecycle_update, select_jobs


@dataclass(frozen=True)
class Request:
    command: str  # rearchive | force-aggregate
    job_ids: tuple[int, ...] = ()
    query: str | None = None
    reason: str = ""
    concurrency: int | None = None  # None: OPERATOR_CONCURRENCY
    rate_per_s: float | None = None  # None: OPERATOR_RATE_PER_S
    dry_run: bool = False
    as_json: bool = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_ids", type=int, nargs="*", metavar="JOB_ID", help="jobs to act on")
    parser.add_argument("--query", help="a visibility query, e.g. 'LogState=\"verify_failed\"'")
    parser.add_argument("--reason", default="operator request", help="recorded in the update")
    parser.add_argument("--concurrency", type=int, help="updates in flight")
    parser.add_argument("--rate", type=float, help="updates started per second (0: no limit)")
    parser.add_argument("--dry-run", action="store_true", help="list the targets, do nothing")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


def request_from(command: str, args: argparse.Namespace) -> Request:
    return Request(
        command,
        tuple(args.job_ids),
        args.query,
        args.reason,
        args.concurrency,
        args.rate,
        args.dry_run,
        args.json,
    )


async def targets(client: Client, request: Request) -> list[int]:
    jobs = list(dict.fromkeys(request.job_ids))
    if request.query:
        jobs += [j for j in await select_jobs(client, request.query) if j not in jobs]
    return jobs


async def apply(
    client: Client,
    settings: Settings,
    request: Request,
    jobs: Sequence[int],
    advance: Callable[[], None],
) -> list[UpdateOutcome]:
    """The update on every job, under the concurrency and rate limits."""
    slots = asyncio.Semaphore(request.concurrency or settings.operator_concurrency)
    rate = settings.operator_rate_per_s if request.rate_per_s is None else request.rate_per_s
    limiter = RateLimiter(rate)

    async def one(job_id: int) -> UpdateOutcome:
        async with slots:
            await limiter.wait()
            outcome = await lifecycle_update(
                client, settings, job_id, request.command, request.reason
            )
        advance()
        return outcome

    return list(await asyncio.gather(*(one(j) for j in jobs)))


async def run(settings: Settings, request: Request, console: Console) -> list[UpdateOutcome]:
    await preflight(settings, database=False)
    client = await connect(settings)
    jobs = await targets(client, request)
    if request.dry_run:
        return [UpdateOutcome(j, ok=True, state="(dry run)") for j in jobs]
    with Progress(
        TextColumn(f"[bold]{request.command}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=request.as_json,
    ) as progress:
        task = progress.add_task(request.command, total=len(jobs))
        return await apply(client, settings, request, jobs, lambda: progress.advance(task))


def report(console: Console, request: Request, outcomes: Sequence[UpdateOutcome]) -> None:
    if request.as_json:
        console.print_json(
            json.dumps({"command": request.command, "results": [asdict(o) for o in outcomes]})
        )
        return
    table = Table(title=f"{request.command}: {len(outcomes)} logs")
    for column in ("job", "ok", "state", "archived", "error"):
        table.add_column(column)
    for o in outcomes:
        table.add_row(str(o.job_id), "yes" if o.ok else "no", o.state, str(o.archived), o.error)
    console.print(table)


def main(command: str, args: argparse.Namespace, settings: Settings) -> int:
    request = request_from(command, args)
    if not request.job_ids and not request.query:
        raise ConfigError(f"{command}: give JOB_IDs or --query")
    console = Console()
    outcomes = asyncio.run(run(settings, request, console))
    report(console, request, outcomes)
    return 0 if all(o.ok for o in outcomes) else 1
