"""Where log parts enter the system, from AMQP or HTTP: store, push live, signal transitions.

One transaction per batch: find or create the `logs` rows, insert every part in one
statement (`ON CONFLICT (log_id, number) DO NOTHING RETURNING`), mark final parts in
`logs.final_number`, and record the signals the insert calls for in the outbox. Only what
the insert reports as new is a transition: the first part of a job (its `logs` row was
created here, or held no parts and no final part: emptied by a purge after a forced
aggregation, or by PUT /logs for a restarted job), a final part, and any part stored once
the log has a final part. So a job costs its workflow 2-3 signals whatever its length, and
a redelivered duplicate none.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import asyncpg
from prometheus_client import Counter
from temporalio.client import Client

from ingest import outbox
from ingest.outbox import PendingSignal, SignalSender
from ingest.redacted import RedactedJobs
from travis_logs.parts import LogPart
from travis_logs.redaction import mask_text
from travis_logs.settings import Settings
from workflows.models import PartRef, PartsSignal

log = logging.getLogger(__name__)

PARTS = Counter(
    "travis_logs_ingest_parts",
    "Log parts taken in, by outcome (stored, duplicate).",
    ["outcome"],
)

# The redaction rules ride along (an index probe per job, no round trip of their own).
_FIND_LOGS = """
SELECT id, job_id, final_number,
       NOT EXISTS (SELECT 1 FROM log_parts p WHERE p.log_id = logs.id) AS empty,
       ARRAY(SELECT r.secret FROM log_redaction_rules r
             WHERE r.job_id = logs.job_id AND r.active) AS secrets
FROM logs WHERE job_id = ANY($1::bigint[])
"""
# Sorted input: two transactions creating the same jobs take their locks in the same order.
# A row created here gets its first part in this batch: first_part_at is set with it.
_CREATE_LOGS = """
INSERT INTO logs (job_id, first_part_at)
SELECT job_id, now() FROM unnest($1::bigint[]) AS t(job_id) ORDER BY job_id
ON CONFLICT (job_id) DO NOTHING
RETURNING id, job_id
"""
# The same statement stamps first_part_at on older rows that had none (created by PUT /logs,
# replaced, adopted), so the batch costs no extra round trip and locks no other row.
_INSERT_PARTS = """
WITH stored AS (
    INSERT INTO log_parts (log_id, number, content, final)
    SELECT * FROM unnest($1::bigint[], $2::integer[], $3::text[], $4::boolean[])
    ON CONFLICT (log_id, number) DO NOTHING
    RETURNING log_id, number, final, octet_length(content) AS size
), stamped AS (
    UPDATE logs SET first_part_at = now()
    WHERE id IN (SELECT log_id FROM stored) AND first_part_at IS NULL
)
SELECT * FROM stored
"""
# final_number only grows: a stray smaller "final" must not make later parts look late.
_MARK_FINAL = """
UPDATE logs SET final_number = f.number, final_part_at = now()
FROM unnest($1::bigint[], $2::integer[]) AS f(id, number)
WHERE logs.id = f.id AND (logs.final_number IS NULL OR logs.final_number < f.number)
"""


class PartsPublisher(Protocol):
    """What intake needs of `core.pusher.PusherPublisher`: queue parts, never raise."""

    async def publish(self, parts: Sequence[LogPart]) -> None: ...


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """What happened to a call's parts: stored (new), duplicates, signals accepted."""

    stored: int
    duplicates: int
    signals: int


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """A committed batch: the (job_id, number) keys that were new and the signals it owes."""

    new: frozenset[tuple[int, int]]
    duplicates: int
    pending: list[PendingSignal]
    # The masked text of every part of the batch that a redaction rule changed.
    masked: dict[tuple[int, int], str] = field(default_factory=dict)

    def as_stored(self, part: LogPart) -> LogPart:
        """`part` as it was stored: masked when a redaction rule applies to it."""
        text = self.masked.get((part.job_id, part.number))
        return part if text is None else dataclasses.replace(part, content=text)


@dataclass(frozen=True, slots=True)
class _Log:
    id: int
    job_id: int
    final_number: int | None
    # No part stored before this batch: its first new part starts the log's stream.
    empty: bool
    # Literal strings of the job's redactions: masked in its parts before they are stored.
    secrets: tuple[str, ...] = ()


class PartIntake:
    """Stores parts, pushes them live and signals their workflows; shared by AMQP and HTTP."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        temporal_client: Client,
        settings: Settings,
        publisher: PartsPublisher,
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self.signals = SignalSender(pool, temporal_client, settings)
        self.redacted = RedactedJobs()

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    async def accept(self, parts: Sequence[LogPart]) -> IntakeResult:
        """Push, store and signal `parts`; raises when the database or Temporal fails.

        A retry after a failure is safe: stored parts are duplicates the second time, and
        signals recorded before the failure are resent from the outbox.
        """
        batch = await self.store(parts)
        # After the store, as stored: a part of a job with redaction rules is pushed masked.
        await self.push([batch.as_stored(p) for p in parts])  # only queues
        sent = await self.signals.deliver(batch.pending, patient=False, raise_errors=True)
        return IntakeResult(stored=len(batch.new), duplicates=batch.duplicates, signals=sent)

    async def push(self, parts: Sequence[LogPart]) -> None:
        """Hand `parts` to the Pusher publisher (which queues them and never raises)."""
        if parts:
            await self._publisher.publish(parts)

    async def store(self, parts: Sequence[LogPart]) -> StoredBatch:
        """Insert `parts` and record their transition signals in one transaction."""
        unique = _dedupe(parts)
        if not unique:
            return StoredBatch(frozenset(), 0, [])
        async with self._pool.acquire() as conn, conn.transaction():
            logs = await _find_or_create_logs(conn, sorted({p.job_id for p in unique}))
            masked = _masked(unique, logs)
            rows = await _insert_parts(conn, unique, logs, masked)
            by_log = {lg.id: lg for lg in logs.values()}
            await _mark_final(conn, rows)
            pending = await outbox.record(conn, transitions(rows, by_log))
        self.redacted.learn({lg.job_id for lg in logs.values() if lg.secrets})
        new = frozenset((by_log[r["log_id"]].job_id, r["number"]) for r in rows)
        PARTS.labels("stored").inc(len(new))
        PARTS.labels("duplicate").inc(len(parts) - len(new))
        return StoredBatch(new, len(parts) - len(new), pending, masked)


def _dedupe(parts: Sequence[LogPart]) -> list[LogPart]:
    """First copy of each (job_id, number), sorted so concurrent batches lock in one order."""
    first: dict[tuple[int, int], LogPart] = {}
    for p in parts:
        first.setdefault((p.job_id, p.number), p)
    return [first[k] for k in sorted(first)]


async def _find_or_create_logs(conn: asyncpg.Connection, job_ids: list[int]) -> dict[int, _Log]:
    """The `logs` row of each job, created when missing; exactly one creator per job."""
    found = {r["job_id"]: _found(r) for r in await conn.fetch(_FIND_LOGS, job_ids)}
    missing = [j for j in job_ids if j not in found]
    if missing:
        for r in await conn.fetch(_CREATE_LOGS, missing):
            found[r["job_id"]] = _Log(r["id"], r["job_id"], None, empty=True)
        # Rows another transaction created meanwhile: ON CONFLICT waited for its commit, and
        # this new statement's snapshot sees them.
        raced = [j for j in missing if j not in found]
        if raced:
            for r in await conn.fetch(_FIND_LOGS, raced):
                found[r["job_id"]] = _found(r)
    return found


def _found(r: asyncpg.Record) -> _Log:
    return _Log(r["id"], r["job_id"], r["final_number"], r["empty"], tuple(r["secrets"]))


def _masked(parts: list[LogPart], logs: dict[int, _Log]) -> dict[tuple[int, int], str]:
    """The parts a redaction rule of their job changes, masked (no work for other jobs)."""
    out = {}
    for p in parts:
        secrets = logs[p.job_id].secrets
        if secrets:
            text = mask_text(p.content, secrets)
            if text != p.content:
                out[(p.job_id, p.number)] = text
    return out


async def _insert_parts(
    conn: asyncpg.Connection,
    parts: list[LogPart],
    logs: dict[int, _Log],
    masked: dict[tuple[int, int], str],
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        _INSERT_PARTS,
        [logs[p.job_id].id for p in parts],
        [p.number for p in parts],
        [masked.get((p.job_id, p.number), p.content) for p in parts],
        [p.final for p in parts],
    )
    return rows


async def _mark_final(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> None:
    finals: dict[int, int] = {}
    for r in rows:
        if r["final"]:
            finals[r["log_id"]] = max(r["number"], finals.get(r["log_id"], -1))
    if finals:
        await conn.execute(_MARK_FINAL, list(finals), list(finals.values()))


def transitions(rows: Sequence[asyncpg.Record], logs: dict[int, _Log]) -> list[PartsSignal]:
    """One signal per job whose new rows include a transition, carrying only those refs."""
    new_by_log: dict[int, list[asyncpg.Record]] = {}
    for r in rows:
        new_by_log.setdefault(r["log_id"], []).append(r)
    signals = []
    for log_id, new in new_by_log.items():
        refs = _transition_refs(logs[log_id], sorted(new, key=lambda r: r["number"]))
        if refs:
            signals.append(PartsSignal(logs[log_id].job_id, refs))
    return signals


def _transition_refs(lg: _Log, new: list[asyncpg.Record]) -> list[PartRef]:
    if lg.final_number is not None:
        return [_ref(r) for r in new]  # every part after the final one is late news
    finals = [r["number"] for r in new if r["final"]]
    # Parts numbered after a final part of the same batch are late too.
    after = min(finals) if finals else None
    picked = [r for r in new if r["final"] or (after is not None and r["number"] > after)]
    if lg.empty and (not picked or picked[0] is not new[0]):
        picked.insert(0, new[0])  # the first part starts the workflow
    return [_ref(r) for r in picked]


def _ref(r: asyncpg.Record) -> PartRef:
    return PartRef(number=r["number"], size=r["size"] or 0, final=r["final"])
