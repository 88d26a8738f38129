"""Where log parts enter the system, from AMQP or HTTP: store, push live, signal transitions.

One transaction per batch: find or create the `logs` rows, insert every part in one
statement (`ON CONFLICT (log_id, number) DO NOTHING RETURNING`), mark final parts in
`logs.final_number`, and record the signals the insert calls for (`transitions`) in the
outbox; after the commit, send them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence, Set
from dataclasses import dataclass, field
from typing import Protocol

import asyncpg
from prometheus_client import Counter
from temporalio.client import Client

from ingest import limit, outbox
from ingest.outbox import PendingSignal, SignalSender
from ingest.redacted import RedactedJobs
from ingest.transitions import KnownLog, transitions
from travis_logs.backoff import backoff
from travis_logs.log_limit import Limits
from travis_logs.parts import LogPart
from travis_logs.redaction import mask_text
from travis_logs.settings import Settings

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
# replaced, adopted) and counts each log's bytes for the size limit, so the batch costs no
# extra round trip; `cut` marks the logs past LOGS_MAX_BYTES ($5) or cut already. The count
# locks each log's row to the commit (in log id order): a batch with a part of a log that an
# aggregation holds waits for it, which only late parts meet.
_INSERT_PARTS = """
WITH stored AS (
    INSERT INTO log_parts (log_id, number, content, final)
    SELECT * FROM unnest($1::bigint[], $2::integer[], $3::text[], $4::boolean[])
    ON CONFLICT (log_id, number) DO NOTHING
    RETURNING log_id, number, final, octet_length(content) AS size
), counted AS (
    UPDATE logs SET received_bytes = logs.received_bytes + s.bytes,
                    first_part_at = coalesce(logs.first_part_at, now())
    FROM (SELECT log_id, coalesce(sum(size), 0) AS bytes FROM stored
          GROUP BY log_id ORDER BY log_id) AS s
    WHERE logs.id = s.log_id
    RETURNING logs.id, logs.received_bytes > $5 OR logs.elided_from IS NOT NULL AS cut
)
SELECT stored.*, counted.cut FROM stored JOIN counted ON counted.id = stored.log_id
"""
# final_number only grows: a stray smaller "final" must not make later parts look late.
_MARK_FINAL = """
UPDATE logs SET final_number = f.number, final_part_at = now()
FROM unnest($1::bigint[], $2::integer[]) AS f(id, number)
WHERE logs.id = f.id AND (logs.final_number IS NULL OR logs.final_number < f.number)
"""


# The database is down, restarting, overloaded, or this transaction lost a deadlock.
OUTAGES = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.TransactionRollbackError,
    asyncpg.exceptions.InsufficientResourcesError,
)
MAX_BACKOFF_S = 5.0

Key = tuple[int, int]  # (job_id, number)


class PartsPublisher(Protocol):
    """What intake needs of `PusherPublisher`: queue parts at once, never raise."""

    def offer(self, parts: Sequence[LogPart]) -> None: ...


@dataclass(frozen=True, slots=True)
class IntakeResult:
    """What happened to a call's parts: stored (new), duplicates, signals accepted, refused.

    `refused` maps the parts a patient call could not store, alone and after retries, to
    why (the caller dead-letters them); a bounded call raises instead.
    """

    stored: int
    duplicates: int
    signals: int
    refused: dict[Key, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """A committed batch: the (job_id, number) keys that were new and the signals it owes."""

    new: frozenset[Key]
    duplicates: int
    pending: list[PendingSignal]
    # The masked text of every part of the batch that a redaction rule changed.
    masked: dict[Key, str] = field(default_factory=dict)
    refused: dict[Key, str] = field(default_factory=dict)

    def as_stored(self, part: LogPart) -> LogPart:
        """`part` as it was stored: masked when a redaction rule applies to it."""
        text = self.masked.get((part.job_id, part.number))
        return part if text is None else dataclasses.replace(part, content=text)


class PartIntake:
    """Where a parsed part goes: pushed live, stored, its transitions signalled.

    The one orchestrator of both paths. AMQP calls `arrived` for each delivery (the live
    push, before the store) and `store(..., patient=True)` per batch, and sends the signals
    itself: a database outage is waited out (the broker keeps the unacked messages
    meanwhile), a part that fails alone is refused for the dead-letter queue. HTTP calls
    `accept` alone: bounded, it raises.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        signals: SignalSender,
        publisher: PartsPublisher,
        redacted: RedactedJobs,
        *,
        store_attempts: int = 5,
        limits: Limits | None = None,
    ) -> None:
        self._pool = pool
        self._signals = signals
        self._publisher = publisher
        self._redacted = redacted
        self._store_attempts = store_attempts
        self._limits = limits or Limits()

    def arrived(self, part: LogPart, redelivered: bool) -> bool:
        """Push `part` live now, before its store, unless it must wait; True when pushed.

        A redelivered part may be a duplicate: it is pushed once the insert says it is new.
        A part of a job with redaction rules is pushed after the store too, masked. Never
        awaits and never raises (AMQP calls it in the channel's frame reader).
        """
        if redelivered or self._redacted.defers(part.job_id):
            return False
        self._publisher.offer((part,))
        return True

    async def accept(
        self, parts: Sequence[LogPart], *, patient: bool = False, pushed: Set[Key] = frozenset()
    ) -> IntakeResult:
        """Store `parts`, push the new ones not `pushed` already (as stored), signal.

        Bounded (HTTP): raises when the database or Temporal fails. Patient (AMQP): retries
        outages of either until they pass, and refuses the parts that fail alone. A retry
        after a failure is safe: stored parts are duplicates the second time, and signals
        recorded before the failure are resent from the outbox.
        """
        batch = await self.store(parts, patient=patient, pushed=pushed)
        sent = await self._signals.deliver(batch.pending, patient=patient, raise_errors=not patient)
        return IntakeResult(len(batch.new), batch.duplicates, sent, batch.refused)

    async def store(
        self, parts: Sequence[LogPart], *, patient: bool = False, pushed: Set[Key] = frozenset()
    ) -> StoredBatch:
        """`accept` without sending: the signals the batch owes are in the outbox and in
        `pending`, for the caller to send (AMQP sends them while it stores the next batch)."""
        batch = await (self._store_patiently(parts) if patient else self._store(parts))
        self._push_stored(parts, batch, pushed)  # only queues
        return batch

    def _push_stored(self, parts: Sequence[LogPart], batch: StoredBatch, pushed: Set[Key]) -> None:
        late, seen = [], set(pushed)
        for p in parts:
            key = (p.job_id, p.number)
            if key in batch.new and key not in seen:
                seen.add(key)
                late.append(batch.as_stored(p))
        if late:
            self._publisher.offer(late)

    async def _store_patiently(self, parts: Sequence[LogPart]) -> StoredBatch:
        """The batch, waiting out outages; if it fails for more, part by part."""
        try:
            return await self._retrying(parts, attempts=1)
        except Exception:
            log.exception("storing a batch of %d parts failed; storing one by one", len(parts))
        new: set[Key] = set()
        masked: dict[Key, str] = {}
        pending, refused, duplicates = [], {}, 0
        for p in _dedupe(parts):
            try:
                one = await self._retrying([p], self._store_attempts)
            except Exception as err:
                refused[(p.job_id, p.number)] = f"store: {err!r}"
                continue
            new |= one.new
            pending += one.pending
            masked |= one.masked  # pushed after the store as stored, masked
            duplicates += one.duplicates
        return StoredBatch(frozenset(new), duplicates, pending, masked, refused)

    async def _retrying(self, parts: Sequence[LogPart], attempts: int) -> StoredBatch:
        """`_store`, waiting out database outages; other errors raise after `attempts`."""
        delays, failures = backoff(0.1, MAX_BACKOFF_S), 0
        while True:
            delay = next(delays)
            try:
                return await self._store(parts)
            except OUTAGES as err:
                log.warning("database unavailable (%r); retrying in %.1f s", err, delay)
            except Exception:
                failures += 1
                if failures >= attempts:
                    raise
            await asyncio.sleep(delay)

    async def _store(self, parts: Sequence[LogPart]) -> StoredBatch:
        """Insert `parts` and record their transition signals in one transaction."""
        unique = _dedupe(parts)
        if not unique:
            return StoredBatch(frozenset(), 0, [])
        async with self._pool.acquire() as conn, conn.transaction():
            logs = await _find_or_create_logs(conn, sorted({p.job_id for p in unique}))
            masked = _masked(unique, logs)
            rows = await _insert_parts(conn, unique, logs, masked, self._limits.max_bytes)
            await _keep_limits(conn, rows, self._limits)
            by_log = {lg.id: lg for lg in logs.values()}
            await _mark_final(conn, rows)
            pending = await outbox.record(conn, transitions(rows, by_log))
        self._redacted.learn({lg.job_id for lg in logs.values() if lg.secrets})
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


async def _find_or_create_logs(conn: asyncpg.Connection, job_ids: list[int]) -> dict[int, KnownLog]:
    """The `logs` row of each job, created when missing; exactly one creator per job."""
    found = {r["job_id"]: _found(r) for r in await conn.fetch(_FIND_LOGS, job_ids)}
    missing = [j for j in job_ids if j not in found]
    if missing:
        for r in await conn.fetch(_CREATE_LOGS, missing):
            found[r["job_id"]] = KnownLog(r["id"], r["job_id"], None, empty=True, created=True)
        # Rows another transaction created meanwhile: ON CONFLICT waited for its commit, and
        # this new statement's snapshot sees them.
        raced = [j for j in missing if j not in found]
        if raced:
            for r in await conn.fetch(_FIND_LOGS, raced):
                found[r["job_id"]] = _found(r)
    return found


def _found(r: asyncpg.Record) -> KnownLog:
    return KnownLog(r["id"], r["job_id"], r["final_number"], r["empty"], tuple(r["secrets"]))


def _masked(parts: list[LogPart], logs: dict[int, KnownLog]) -> dict[tuple[int, int], str]:
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
    logs: dict[int, KnownLog],
    masked: dict[tuple[int, int], str],
    max_bytes: int,
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        _INSERT_PARTS,
        [logs[p.job_id].id for p in parts],
        [p.number for p in parts],
        [masked.get((p.job_id, p.number), p.content) for p in parts],
        [p.final for p in parts],
        max_bytes,
    )
    return rows


async def _keep_limits(
    conn: asyncpg.Connection, rows: list[asyncpg.Record], limits: Limits
) -> None:
    """The logs the batch took past the size limit, or that were cut already: cut them."""
    over: dict[int, list[tuple[int, int]]] = {}
    for r in rows:
        if r["cut"]:
            over.setdefault(r["log_id"], []).append((r["number"], r["size"] or 0))
    for log_id in sorted(over):
        await limit.enforce(conn, log_id, over[log_id], limits)


async def _mark_final(conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> None:
    finals: dict[int, int] = {}
    for r in rows:
        if r["final"]:
            finals[r["log_id"]] = max(r["number"], finals.get(r["log_id"], -1))
    if finals:
        await conn.execute(_MARK_FINAL, list(finals), list(finals.values()))


@dataclass(frozen=True, slots=True)
class Intake:
    """`PartIntake` and the collaborators an entry point also runs in the background (the
    wiring the entry points inject; the API's one way into the ingest is this module)."""

    pool: asyncpg.Pool
    signals: SignalSender  # its outbox sweep
    redacted: RedactedJobs  # its LISTEN for new redactions
    parts: PartIntake


def assemble(
    pool: asyncpg.Pool, temporal: Client, settings: Settings, publisher: PartsPublisher
) -> Intake:
    """A `PartIntake` over these clients, with its own signal sender and redaction set."""
    signals = SignalSender(pool, temporal, settings)
    redacted = RedactedJobs()
    parts = PartIntake(
        pool,
        signals,
        publisher,
        redacted,
        store_attempts=settings.ingest_store_attempts,
        limits=settings.log_limits,
    )
    return Intake(pool, signals, redacted, parts)
