"""What each round must end with, from the simulator's own parts, checked from outside.

The expected log of a job is the simulator's parts (cleaned by the simulator's own rule),
each number once, first text sent wins, in number order. The check reads the bucket with a
client of its own and the `logs` rows with plain SQL, and asks Temporal how many workflows
still run: it shares nothing with the code under test but the database schema.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import aioboto3
import asyncpg
from temporalio.client import Client

from bench.faultkit.stack import BUCKET
from travis_logs.simulator.cleaning import expected_text
from travis_logs.simulator.job import SimulatedJob

_ROWS = """
SELECT l.job_id, l.purged_at IS NOT NULL AS purged, l.archive_verified IS TRUE AS verified,
       l.archive_sha256, (SELECT count(*) FROM log_parts p WHERE p.log_id = l.id) AS parts_left
FROM logs l WHERE l.job_id = ANY($1::bigint[])
"""


@dataclass
class Truth:
    """One job as the oracle knows it: part number -> expected text."""

    job_id: int
    parts: dict[int, str] = field(default_factory=dict)

    @classmethod
    def of(cls, job: SimulatedJob) -> Truth:
        return cls(job.job_id, {p.number: expected_text(p.data) for p in job.parts})

    def add(self, number: int, text: str) -> None:
        self.parts.setdefault(number, text)  # a divergent re-send does not change the log

    @property
    def log(self) -> str:
        return "".join(text for _, text in sorted(self.parts.items()))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.log.encode()).hexdigest()


@dataclass
class Verdict:
    """A round's outcome against the oracle."""

    jobs: int = 0
    parts: int = 0
    lost: int = 0  # expected parts missing from the archives
    duplicated: int = 0  # parts that appear more often than in the expected logs
    wrong: int = 0  # archives missing or not byte for byte the expected log
    unverified_purges: int = 0  # purged without a verified archive of the expected log
    running: int = 0  # workflows still open
    wrong_reads: int = 0  # reads during a merge window that served another log


async def archived(dsn: str, truths: Iterable[Truth]) -> bool:
    """Every job purged with a verified archive of its expected log, and no parts left."""
    wanted = {t.job_id: t.sha256 for t in truths}
    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    try:
        rows = await conn.fetch(_ROWS, list(wanted))
    except (OSError, asyncpg.PostgresError):
        return False
    finally:
        with contextlib.suppress(Exception):
            await conn.close()
    done = {
        r["job_id"]
        for r in rows
        if r["purged"]
        and r["verified"]
        and r["archive_sha256"] == wanted[r["job_id"]]
        and r["parts_left"] == 0
    }
    return done == set(wanted)


async def running_workflows(client: Client) -> int:
    try:
        return (await client.count_workflows('ExecutionStatus="Running"')).count
    except Exception:  # Temporal restarting: not settled yet
        return -1


async def judge(dsn: str, s3_url: str, client: Client, truths: list[Truth]) -> Verdict:
    """The full check: every archive read back and compared, every purge looked at."""
    verdict = Verdict(jobs=len(truths), parts=sum(len(t.parts) for t in truths))
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        rows = {r["job_id"]: r for r in await conn.fetch(_ROWS, [t.job_id for t in truths])}
    finally:
        await conn.close()
    session = aioboto3.Session()
    async with session.client("s3", endpoint_url=s3_url, region_name="us-east-1") as s3:
        for truth in truths:
            archive = await _archive(s3, truth.job_id)
            _count(verdict, truth, archive, rows.get(truth.job_id))
    verdict.running = await running_workflows(client)
    return verdict


async def _archive(s3: Any, job_id: int) -> str | None:
    try:
        got = await s3.get_object(Bucket=BUCKET, Key=f"jobs/{job_id}/log.txt")
    except Exception:
        return None
    async with got["Body"] as body:
        data: bytes = await body.read()
    return data.decode("utf-8", errors="replace")


def _count(verdict: Verdict, truth: Truth, archive: str | None, row: asyncpg.Record | None) -> None:
    expected = truth.log
    if archive != expected:
        verdict.wrong += 1
    found = archive or ""
    for text in truth.parts.values():
        if not text:
            continue
        want, got = expected.count(text), found.count(text)
        verdict.lost += got < want
        verdict.duplicated += got > want
    if row is not None and row["purged"] and (not row["verified"] or archive != expected):
        verdict.unverified_purges += 1
