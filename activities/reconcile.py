"""Reconciliation: start the workflow of every log that is not done and has none open.

Pages go through the logs that are not done in id order (keyset pagination over two small
indexes: logs with content, logs with parts), so a pass costs the same on a table of ten
million done logs as on an empty one. Each page is classified (activities/reconcile_plan.py),
the logs whose workflow is open are set aside, and the rest are started through an injected
`LogFixer`, which starts a run only where none is open: running twice does nothing more.
An open run whose log went silent without a final part (older than LOGS_FORCE_AFTER_S) is
woken instead, to aggregate what it has: no run keeps a timer for that itself.
`travis-logs reconcile` runs pages in a loop; the sweeper runs them as an activity.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

import asyncpg
from prometheus_client import Counter, Gauge
from temporalio import activity

from activities.reconcile_models import SWEEP_PAGE, FixedLog, SweepPageInput, SweepPageResult
from activities.reconcile_plan import Action, LogDbState, LogRow, Plan, classify
from travis_logs.logrow import TEXT_COLUMNS, RowText

log = logging.getLogger(__name__)

RECONCILED = Counter(
    "travis_logs_reconcile_logs",
    "Logs looked at by reconciliation, by source (cli, sweeper), database state and outcome.",
    ["source", "state", "outcome"],
)
SWEEPER_PAGES = Counter(
    "travis_logs_sweeper_pages", "Pages of candidate logs the sweeper went through."
)
UNFINISHED = Gauge(
    "travis_logs_unfinished_logs",
    "Logs not done (content or parts left), at the sweeper's last pass.",
)
UNFINISHED_OLDEST = Gauge(
    "travis_logs_unfinished_oldest_seconds",
    "Age of the oldest log that is not done (0: none), at the sweeper's last pass.",
)

# Logs that are not done: with content (not purged yet) or with stored parts. The two
# branches are keyset scans of logs_with_content and log_parts_log_id_created_at.
_CANDIDATES = f"""
WITH ids AS (
    SELECT id FROM (
        (SELECT id FROM logs WHERE content IS NOT NULL AND id > $1 ORDER BY id LIMIT $2)
        UNION
        (SELECT DISTINCT log_id FROM log_parts WHERE log_id > $1 ORDER BY log_id LIMIT $2)
    ) u ORDER BY id LIMIT $2
)
SELECT l.id, l.job_id, {TEXT_COLUMNS}, l.final_number,
       l.archived_at IS NOT NULL AS archived, coalesce(l.archive_verified, false) AS verified,
       p.parts, p.newest_age_s
FROM ids JOIN logs l USING (id)
LEFT JOIN LATERAL (
    SELECT count(*) AS parts, extract(epoch FROM now() - max(created_at))::float8 AS newest_age_s
    FROM log_parts WHERE log_id = l.id
) p ON true
ORDER BY l.id
"""
_UNFINISHED = """
WITH ids AS (
    SELECT id FROM logs WHERE content IS NOT NULL UNION SELECT DISTINCT log_id FROM log_parts
)
SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(l.created_at)), 0)::float8 AS oldest
FROM ids JOIN logs l USING (id)
"""
_READ_CURSOR = "SELECT last_id FROM reconcile_cursor WHERE name = $1"
_WRITE_CURSOR = """
INSERT INTO reconcile_cursor (name, last_id) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET last_id = EXCLUDED.last_id, updated_at = now()
"""


class Outcome(StrEnum):
    STARTED = "started"
    FORCED = "forced"
    WOKEN = "woken"  # a run is open and its log went silent: asked to check and aggregate
    OPEN = "open"  # a run is open: it owns the log
    DONE = "done"  # nothing to do
    PLANNED = "planned"  # dry run: would have started it
    FAILED = "failed"


class LogFixer(Protocol):
    """How reconciliation reaches Temporal (workflows/reconcile.py; injected)."""

    async def open_jobs(self, job_ids: Sequence[int]) -> set[int]:
        """The jobs among `job_ids` whose workflow has an open run (best effort)."""
        ...

    async def fix(self, job_id: int, action: Action) -> bool:
        """Start the job's workflow as `action` says; False when a run was open already."""
        ...

    async def wake(self, job_id: int) -> bool:
        """Ask the job's open run to read its log again (a force check); False: none open."""
        ...


@dataclass
class Page:
    """One page: every candidate row with what happened to it, and where the next starts."""

    items: list[FixedLog] = field(default_factory=list)
    last_id: int | None = None  # None: the end of the table


def to_row(record: asyncpg.Record) -> LogRow:
    return LogRow(
        log_id=record["id"],
        job_id=record["job_id"],
        text=RowText.of(record),
        parts=record["parts"] or 0,
        final_number=record["final_number"],
        newest_part_age_s=record["newest_age_s"],
        archived=record["archived"],
        archive_verified=record["verified"],
    )


class Reconciler:
    """Classifies and fixes pages of candidate logs; clients injected."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        fixer: LogFixer,
        *,
        force_after_s: float,
        source: str,
        concurrency: int = 8,
    ) -> None:
        self._pool = pool
        self._fixer = fixer
        self._force_after_s = force_after_s
        self._source = source
        self._slots = asyncio.Semaphore(concurrency)

    async def page(self, after_id: int, limit: int, *, dry_run: bool = False) -> Page:
        """Reconcile the (at most `limit`) candidates after log id `after_id`."""
        rows = [to_row(r) for r in await self._pool.fetch(_CANDIDATES, after_id, limit)]
        plans = [(row, classify(row, self._force_after_s)) for row in rows]
        acting = [row.job_id for row, plan in plans if plan.action is not Action.NONE]
        open_jobs = await self._fixer.open_jobs(acting) if acting else set()
        items = await asyncio.gather(
            *(self._one(row, plan, row.job_id in open_jobs, dry_run) for row, plan in plans)
        )
        for item in items:
            RECONCILED.labels(self._source, item.state, item.outcome).inc()
        last = rows[-1].log_id if len(rows) == limit else None
        return Page(list(items), last)

    async def _one(self, row: LogRow, plan: Plan, is_open: bool, dry_run: bool) -> FixedLog:
        def result(outcome: Outcome) -> FixedLog:
            return FixedLog(row.job_id, plan.state, plan.action, outcome, plan.reason)

        if plan.action is Action.NONE:
            return result(Outcome.DONE)
        silent = plan.state is LogDbState.PARTS_ONLY and plan.action is Action.FORCE
        if is_open and not silent:
            return result(Outcome.OPEN)
        if dry_run:
            return result(Outcome.PLANNED)
        async with self._slots:
            try:
                if is_open:
                    woken = await self._fixer.wake(row.job_id)
                    return result(Outcome.WOKEN if woken else Outcome.OPEN)
                fixed = await self._fixer.fix(row.job_id, plan.action)
            except Exception as err:  # one refused log must not stop the pass
                log.warning(
                    "reconcile: job %d: %s failed: %r",
                    row.job_id,
                    plan.action,
                    err,
                    extra={"job_id": row.job_id},
                )
                return result(Outcome.FAILED)
        if not fixed:
            return result(Outcome.OPEN)
        return result(Outcome.FORCED if plan.action is Action.FORCE else Outcome.STARTED)


class ReconcileActivities:
    """reconcile_page: one page of the sweeper's pass, its place kept in reconcile_cursor."""

    def __init__(self, pool: asyncpg.Pool, reconciler: Reconciler) -> None:
        self._pool = pool
        self._reconciler = reconciler

    @activity.defn(name=SWEEP_PAGE.name)
    async def reconcile_page(self, inp: SweepPageInput) -> SweepPageResult:
        """Reconcile the next page after the cursor; the cursor wraps at the table's end."""
        after = await self._pool.fetchval(_READ_CURSOR, inp.cursor) or 0
        if after == 0:  # a pass begins: measure what is left for the "not done" alert
            stats = await self._pool.fetchrow(_UNFINISHED)
            UNFINISHED.set(stats["n"])
            UNFINISHED_OLDEST.set(stats["oldest"])
        page = await self._reconciler.page(after, inp.page_size)
        await self._pool.execute(_WRITE_CURSOR, inp.cursor, page.last_id or 0)
        SWEEPER_PAGES.inc()
        return summarize(page)


def summarize(page: Page) -> SweepPageResult:
    fixed = [i for i in page.items if i.outcome in (Outcome.STARTED, Outcome.FORCED, Outcome.WOKEN)]
    return SweepPageResult(
        scanned=len(page.items),
        wrapped=page.last_id is None,
        fixed=fixed,
        open=sum(i.outcome == Outcome.OPEN for i in page.items),
        failed=sum(i.outcome == Outcome.FAILED for i in page.items),
    )
