"""`travis-logs status JOB_ID`: the workflow, the database row and the S3 object of one log.

Ends with one line saying where the log is and why. Exit code 0 when the log is done or on
its way, 1 when an operator has to act (verify_failed, stuck without a workflow), 3 when
there is no such log.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import asyncpg
from rich.console import Console
from rich.table import Table

from activities.models import RedactionRecord
from activities.reconcile import to_row
from travis_logs.archive_store import ArchiveStore
from travis_logs.db import create_pool
from travis_logs.logrow import TEXT_COLUMNS
from travis_logs.s3 import check_bucket, s3_client
from travis_logs.settings import Settings
from travis_logs.temporal import connect
from workers.preflight import preflight
from workflows.diagnosis import Archive, Level, Verdict, diagnose
from workflows.operations import WorkflowView, workflow_view

EXIT = {Level.OK: 0, Level.ATTENTION: 1, Level.MISSING: 3}

_ROW = f"""
SELECT l.id, l.job_id, {TEXT_COLUMNS}, octet_length(l.content) AS bytes,
       l.final_number, l.content_version, l.archived_at IS NOT NULL AS archived,
       coalesce(l.archive_verified, false) AS verified,
       l.aggregated_at, l.archived_at, l.purged_at, l.archive_version, l.archive_size,
       l.archive_sha256, l.removed_by, p.parts, p.newest_age_s
FROM logs l
LEFT JOIN LATERAL (
    SELECT count(*) AS parts, extract(epoch FROM now() - max(created_at))::float8 AS newest_age_s
    FROM log_parts WHERE log_id = l.id
) p ON true
WHERE l.job_id = $1
"""
_ROW_FIELDS = (
    "id", "bytes", "parts", "final_number", "content_version", "aggregated_at", "archived_at",
    "verified", "purged_at", "archive_version", "archive_size", "archive_sha256", "removed_by",
)  # fmt: skip


@dataclass
class Report:
    job_id: int
    verdict: Verdict
    view: WorkflowView
    row: dict[str, Any] | None
    archive: Archive


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("job_id", type=int, help="the job whose log to show")
    parser.add_argument("--json", action="store_true", help="print one JSON document")


async def _archive(store: ArchiveStore, job_id: int, recorded: str | None) -> Archive:
    digest = await store.digest(job_id)
    if digest is None:
        return Archive(None, recorded_sha256=recorded)
    return Archive(digest.size, digest.sha256, recorded)


async def report(settings: Settings, job_id: int) -> Report:
    """Read the three sources and judge them."""
    await preflight(settings)
    async with AsyncExitStack() as stack:
        pool = await create_pool(str(settings.database_url), max_size=1)
        stack.push_async_callback(pool.close)
        s3 = await stack.enter_async_context(s3_client(settings))
        await check_bucket(s3, settings)
        client = await connect(settings)
        record: asyncpg.Record | None = await pool.fetchrow(_ROW, job_id)
        recorded = record["archive_sha256"] if record else None
        archive, view = await asyncio.gather(
            _archive(ArchiveStore.for_settings(s3, settings), job_id, recorded),
            workflow_view(client, job_id),
        )
    row = to_row(record) if record else None
    verdict = diagnose(job_id, row, archive, view.status, view.state, view.asleep_until)
    fields = {k: record[k] for k in _ROW_FIELDS} if record else None
    return Report(job_id, verdict, view, fields, archive)


def _table(title: str, values: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    for key, value in values.items():
        table.add_row(key, "" if value is None else str(value))
    return table


def _redactions(records: list[RedactionRecord]) -> str:
    """Who redacted, why and how many occurrences (the audit rows; no secret in them)."""
    return "; ".join(
        f"#{r.redaction_id} by {r.requested_by}: {r.occurrences} ({r.reason})" for r in records
    )


def show(console: Console, r: Report) -> None:
    s = r.view.state
    console.print(
        _table(
            f"workflow log-{r.job_id}",
            {
                "run": r.view.status or "none",
                "state": s.state if s else _unqueried(r.view),
                "final part": s.final_number if s else None,
                "archive attempts": s.stats.archive_attempts if s else None,
                "last error": s.stats.last_error if s else None,
                "redactions": _redactions(s.redactions) if s else None,
            },
        )
    )
    console.print(_table("database row", r.row or {"row": "none"}))
    console.print(_table("S3 object", asdict(r.archive)))
    style = {Level.OK: "green", Level.ATTENTION: "bold red", Level.MISSING: "yellow"}
    console.print(f"[{style[r.verdict.level]}]job {r.job_id}: {r.verdict.line}[/]")


def _unqueried(view: WorkflowView) -> str | None:
    if view.asleep_until is not None:
        return f"asleep until the final part (at most until {view.asleep_until:%H:%M:%S} UTC)"
    return view.query_error or None


def _plain(value: object) -> object:
    """JSON for what json does not know: sets as sorted lists, times as ISO 8601."""
    if isinstance(value, set | frozenset):
        return sorted(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def as_json(r: Report) -> str:
    doc = {
        "job_id": r.job_id,
        "level": r.verdict.level,
        "summary": r.verdict.line,
        "workflow": {
            "status": r.view.status,
            "run_id": r.view.run_id,
            "asleep_until": r.view.asleep_until,
        },
        "state": asdict(r.view.state) if r.view.state else None,
        "row": r.row,
        "archive": asdict(r.archive),
    }
    return json.dumps(doc, default=_plain)


def main(args: argparse.Namespace, settings: Settings) -> int:
    r = asyncio.run(report(settings, args.job_id))
    console = Console()
    if args.json:
        console.print_json(as_json(r))
    else:
        show(console, r)
    return EXIT[r.verdict.level]
