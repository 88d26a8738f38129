"""Signals owed to log workflows: recorded with the parts they announce, sent after commit.

A batch writes its `PartsSignal`s into `signal_outbox` in the transaction that stores its
parts. After commit they are sent (signal-with-start) and their rows deleted. A process that
dies in between leaves the rows behind; `resend_stale` sends them again from any process.
Sending twice is harmless: the workflow dedupes by part number, and takes a job's signals
in any order (a final part's signal that overtakes the first one starts the run at once).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from prometheus_client import Counter, Gauge
from stamina import retry_context
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from travis_logs.settings import Settings
from workflows.client import signal_parts
from workflows.models import PartRef, PartsSignal

log = logging.getLogger(__name__)

SIGNALS = Counter(
    "travis_logs_ingest_signals",
    "PartsSignals sent to log workflows, by outcome (sent, retried, deferred: left for a resend).",
    ["outcome"],
)

ON_WAY = Gauge(
    "travis_logs_ingest_signals_on_way",
    "Signals of committed batches not yet accepted by Temporal (INGEST_SIGNALS_IN_FLIGHT caps it).",
)

# Temporal answers these while it is down, overloaded or restarting: waiting is right.
TRANSIENT_CODES = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.ABORTED,
        RPCStatusCode.INTERNAL,
        RPCStatusCode.UNKNOWN,
        RPCStatusCode.CANCELLED,
    }
)
MAX_BACKOFF_S = 5.0

_RECORD = """
INSERT INTO signal_outbox (job_id, refs)
SELECT * FROM unnest($1::bigint[], $2::jsonb[])
RETURNING id
"""
_DELETE = "DELETE FROM signal_outbox WHERE id = ANY($1::bigint[])"
# Claiming bumps claimed_at, so two processes sweeping at once do not both resend a row.
_CLAIM_STALE = """
UPDATE signal_outbox SET claimed_at = now()
WHERE id IN (
    SELECT id FROM signal_outbox WHERE claimed_at < now() - $1::interval
    ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED
)
RETURNING id, job_id, refs
"""


@dataclass(frozen=True, slots=True)
class PendingSignal:
    """A signal and the outbox rows to delete once Temporal accepted it."""

    outbox_ids: tuple[int, ...]
    signal: PartsSignal


def transient(err: BaseException) -> bool:
    """True for Temporal failures that go away by themselves (down, busy, timed out)."""
    if isinstance(err, RPCError):
        return err.status in TRANSIENT_CODES
    return isinstance(err, OSError | TimeoutError)


async def record(conn: asyncpg.Connection, signals: Sequence[PartsSignal]) -> list[PendingSignal]:
    """Write `signals` in the caller's transaction; returns them with their outbox ids."""
    if not signals:
        return []
    refs = [json.dumps([_ref_json(r) for r in s.refs]) for s in signals]
    rows = await conn.fetch(_RECORD, [s.job_id for s in signals], refs)
    return [PendingSignal((row["id"],), s) for row, s in zip(rows, signals, strict=True)]


def _ref_json(ref: PartRef) -> dict[str, object]:
    return {"number": ref.number, "size": ref.size, "final": ref.final}


def merge(rows: Iterable[asyncpg.Record]) -> list[PendingSignal]:
    """One signal per job from outbox rows, refs sorted by number without repeats.

    A resent signal never `opens`: its run starts at once, which costs the start task that
    the delay saves, and is right whatever happened to the log since."""
    by_job: dict[int, tuple[list[int], dict[int, PartRef]]] = {}
    for row in rows:
        ids, refs = by_job.setdefault(row["job_id"], ([], {}))
        ids.append(row["id"])
        for r in json.loads(row["refs"]):
            refs.setdefault(r["number"], PartRef(r["number"], r["size"], r["final"]))
    return [
        PendingSignal(tuple(ids), PartsSignal(job_id, [refs[n] for n in sorted(refs)]))
        for job_id, (ids, refs) in by_job.items()
    ]


class SignalSender:
    """Sends pending signals with retries and deletes their outbox rows once accepted."""

    def __init__(self, pool: asyncpg.Pool, client: Client, settings: Settings) -> None:
        self._pool = pool
        self._client = client
        self._settings = settings
        self._slots = asyncio.Semaphore(settings.ingest_signal_concurrency)

    async def deliver(
        self, pending: Sequence[PendingSignal], *, patient: bool = True, raise_errors: bool = False
    ) -> int:
        """Send `pending` and delete the outbox rows of those accepted; returns how many were.

        Patient: transient failures are retried until Temporal accepts (ingest holds its acks
        meanwhile). Otherwise a signal gives up after `ingest_signal_attempts`, and raises
        with `raise_errors`. A signal that gives up stays in the outbox for `resend_stale`, so
        a job Temporal keeps refusing for a lasting reason does not stop the whole ingest.
        """
        if not pending:
            return 0
        results = await asyncio.gather(
            *(self._send(p.signal, patient, raise_errors) for p in pending)
        )
        done = [i for p, ok in zip(pending, results, strict=True) if ok for i in p.outbox_ids]
        await self._forget(done)
        return sum(results)

    async def resend_stale(self, batch: int = 500) -> int:
        """Send the outbox rows nobody has claimed for `ingest_outbox_stale_s`; returns the count."""
        stale = timedelta(seconds=self._settings.ingest_outbox_stale_s)
        sent = 0
        while True:
            rows = await self._pool.fetch(_CLAIM_STALE, stale, batch)
            if rows:
                log.info("resending %d signal(s) left in the outbox", len(rows))
                sent += await self.deliver(merge(rows), patient=False)
            if len(rows) < batch:
                return sent

    async def _send(self, signal: PartsSignal, patient: bool, raise_errors: bool) -> bool:
        tries = 0

        def again(err: BaseException) -> bool:
            """Retry: within the attempts, or patient and Temporal's failure is transient."""
            if not isinstance(err, Exception):  # cancelled: stop at once
                return False
            if tries >= self._settings.ingest_signal_attempts and not (patient and transient(err)):
                return False
            SIGNALS.labels("retried").inc()
            log.warning(
                "signal to job %d failed (attempt %d): %r",
                signal.job_id,
                tries,
                err,
                extra={"job_id": signal.job_id},
            )
            return True

        try:
            async for attempt in retry_context(
                on=again,
                attempts=None,
                timeout=None,
                wait_initial=0.05,
                wait_max=MAX_BACKOFF_S,
                wait_jitter=0.05,
            ):
                tries = attempt.num
                with attempt:
                    await self._send_once(signal)
        except Exception as err:
            SIGNALS.labels("deferred").inc()
            log.error(
                "signal to job %d left in the outbox: %r",
                signal.job_id,
                err,
                extra={"job_id": signal.job_id},
            )
            if raise_errors:
                raise
            return False
        SIGNALS.labels("sent").inc()
        return True

    async def _send_once(self, signal: PartsSignal) -> None:
        async with self._slots:  # the timeout counts from the RPC, not the queue
            async with asyncio.timeout(self._settings.ingest_signal_timeout_s):
                await signal_parts(self._client, self._settings, signal)

    async def _forget(self, ids: list[int]) -> None:
        if not ids:
            return
        try:
            await self._pool.execute(_DELETE, ids)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as err:
            # The signals were accepted; a leftover row only means one harmless resend.
            log.warning("could not delete %d outbox row(s): %r", len(ids), err)


class SignalPump:
    """Sends committed batches' signals in the background, at most `limit` at a time.

    The AMQP path hands each batch's signals here and goes on with the next batch: a burst
    of new jobs (a signal-with-start each) or a slow Temporal then delays the workflows,
    not the storing of parts. Past `limit` signals on their way, `send` waits, so a Temporal
    outage still stops the consumer, with a bounded number of signals in memory; all of
    them are in the outbox, so a stop or a crash meanwhile loses none.
    """

    def __init__(self, sender: SignalSender, limit: int) -> None:
        self._sender = sender
        self._limit = limit
        self._on_way = 0
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[int]] = set()

    @property
    def on_way(self) -> int:
        return self._on_way

    async def send(self, pending: Sequence[PendingSignal]) -> None:
        """Start sending `pending`; waits first while the limit would be passed."""
        if not pending:
            return
        async with self._changed:
            # A batch larger than the limit goes alone rather than never.
            await self._changed.wait_for(
                lambda: self._on_way == 0 or self._on_way + len(pending) <= self._limit
            )
            self._on_way += len(pending)
            ON_WAY.inc(len(pending))
        task = asyncio.create_task(self._deliver(pending))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, pending: Sequence[PendingSignal]) -> int:
        try:
            return await self._sender.deliver(pending, patient=True)
        finally:
            async with self._changed:
                self._on_way -= len(pending)
                ON_WAY.dec(len(pending))
                self._changed.notify_all()

    async def close(self, timeout: float) -> None:
        """Wait up to `timeout` for the signals on their way; the rest stay in the outbox."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)
        left = set(self._tasks)
        for task in left:
            task.cancel()
        await asyncio.gather(*left, return_exceptions=True)
