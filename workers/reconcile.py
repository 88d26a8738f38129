"""`travis-logs reconcile`: start the workflow of every log that is not done and has none open.

Run it once after adopting a travis-logs database (and whenever workflows may have been
lost: an outbox row deleted by hand, a namespace restored from an old backup). A second run
does nothing. `--schedule` instead creates or updates the sweeper Schedule, which runs the
same reconciliation at a fixed interval from the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from activities.reconcile import Outcome, Page, Reconciler
from activities.reconcile_models import FixedLog
from travis_logs.db import create_pool
from travis_logs.ratelimit import RateLimiter
from travis_logs.settings import Settings
from travis_logs.temporal import connect
from workers.preflight import preflight
from workflows.reconcile import TemporalFixer
from workflows.schedule import ensure_sweeper_schedule

_COUNT = """
SELECT count(*) FROM (
    SELECT id FROM logs WHERE content IS NOT NULL UNION SELECT DISTINCT log_id FROM log_parts
) c
"""


@dataclass(frozen=True)
class Options:
    dry_run: bool = False
    rate_per_s: float | None = None  # None: RECONCILE_RATE_PER_S
    page_size: int | None = None  # None: RECONCILE_PAGE_SIZE
    limit: int = 0  # stop after this many candidate logs; 0: all
    as_json: bool = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="print what it would do")
    parser.add_argument("--rate", type=float, help="workflow starts per second (0: no limit)")
    parser.add_argument("--page-size", type=int, help="candidate logs read per query")
    parser.add_argument("--limit", type=int, default=0, help="stop after N candidate logs")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument(
        "--schedule", action="store_true", help="create or update the sweeper Schedule and exit"
    )


async def reconcile_all(
    reconciler: Reconciler, page_size: int, options: Options, on_page: Callable[[Page], None]
) -> list[FixedLog]:
    """Every page from the first log id on (keyset), or until `options.limit` logs."""
    items: list[FixedLog] = []
    after = 0
    while True:
        page = await reconciler.page(after, page_size, dry_run=options.dry_run)
        items.extend(page.items)
        on_page(page)
        if page.last_id is None or (options.limit and len(items) >= options.limit):
            return items
        after = page.last_id


async def run(settings: Settings, options: Options, console: Console) -> list[FixedLog]:
    """Build the clients, reconcile with a progress bar, return what happened to each log."""
    await preflight(settings)
    async with AsyncExitStack() as stack:
        pool = await create_pool(str(settings.database_url), max_size=4)
        stack.push_async_callback(pool.close)
        client = await connect(settings)
        rate = settings.reconcile_rate_per_s if options.rate_per_s is None else options.rate_per_s
        fixer = TemporalFixer(client, settings, RateLimiter(rate))
        reconciler = Reconciler(
            pool, fixer, force_after_s=settings.logs_force_after_s, source="cli"
        )
        total = await pool.fetchval(_COUNT)
        page_size = options.page_size or settings.reconcile_page_size
        with _progress(console, options.as_json) as progress:
            task = progress.add_task("reconcile", total=total)
            return await reconcile_all(
                reconciler, page_size, options, lambda p: progress.advance(task, len(p.items))
            )


def _progress(console: Console, quiet: bool) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
        transient=False,
    )


def summary_table(items: Sequence[FixedLog], dry_run: bool) -> Table:
    """Logs by database state (rows) and what reconciliation did (columns)."""
    counts = Counter((i.state, i.outcome) for i in items)
    outcomes = [o.value for o in Outcome if any(k[1] == o for k in counts)]
    title = "reconcile (dry run)" if dry_run else "reconcile"
    table = Table(title=f"{title}: {len(items)} candidate logs")
    table.add_column("state")
    for outcome in outcomes:
        table.add_column(outcome, justify="right")
    for state in sorted({k[0] for k in counts}):
        table.add_row(state, *(str(counts[(state, o)] or "") for o in outcomes))
    return table


def _report(console: Console, items: Sequence[FixedLog], options: Options) -> None:
    if options.as_json:
        outcomes = Counter(i.outcome for i in items)
        doc = {"dry_run": options.dry_run, "outcomes": outcomes, "logs": [asdict(i) for i in items]}
        console.print_json(json.dumps(doc))
        return
    if options.dry_run:
        for i in items:
            if i.outcome == Outcome.PLANNED:
                console.print(f"would {i.action} job {i.job_id} ({i.state}: {i.reason})")
    console.print(summary_table(items, options.dry_run))


async def schedule(settings: Settings, console: Console) -> None:
    await preflight(settings, database=False)
    client = await connect(settings)
    done = await ensure_sweeper_schedule(client, settings)
    every = settings.sweeper_interval_s
    console.print(f"sweeper schedule {settings.sweeper_schedule_id} {done} (every {every:g} s)")


def main(args: argparse.Namespace, settings: Settings) -> int:
    console = Console()
    if args.schedule:
        asyncio.run(schedule(settings, console))
        return 0
    options = Options(args.dry_run, args.rate, args.page_size, args.limit, args.json)
    items = asyncio.run(run(settings, options, console))
    _report(console, items, options)
    return 1 if any(i.outcome == Outcome.FAILED for i in items) else 0
