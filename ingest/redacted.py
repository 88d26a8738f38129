"""Which jobs have redaction rules, so that their live pushes wait for the masked store.

Parts are pushed to Pusher as they arrive, before the batch that stores them (live latency
does not wait for the database). A part of a job with redaction rules must not be pushed as
it came: it is pushed after the store, masked like the stored copy. This process learns of
such jobs without a query per part: it loads the job ids once, then listens on a PostgreSQL
channel that every new redaction request notifies (in the transaction that stores it, so
the job is known here before the redaction is even applied), and every batch whose logs
query returned rules adds its jobs too. While the listening connection is down, every push
waits for the store: masking is never skipped.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from stamina import retry_context

from travis_logs.redaction import REDACTIONS_CHANNEL

log = logging.getLogger(__name__)

CHANNEL = REDACTIONS_CHANNEL
_JOBS = "SELECT DISTINCT job_id FROM log_redaction_rules"


class RedactedJobs:
    """The jobs whose parts are pushed only after the store; all of them while not watching."""

    def __init__(self) -> None:
        self._jobs: set[int] = set()
        self._watched = False  # a `watch` was started: its listener is then required
        self._listening = False

    def defers(self, job_id: int) -> bool:
        """Whether a part of `job_id` must wait for the masked store before it is pushed."""
        if self._watched and not self._listening:
            return True
        return job_id in self._jobs

    def learn(self, job_ids: set[int]) -> None:
        self._jobs |= job_ids

    async def watch(self, pool: asyncpg.Pool) -> None:
        """Listen for new redactions until cancelled, reconnecting after a lost connection."""
        self._watched = True
        async for attempt in retry_context(
            on=_lost, attempts=None, timeout=None, wait_max=5.0, wait_jitter=0.1
        ):
            with attempt:
                try:
                    await self._listen(pool)
                finally:
                    self._listening = False

    async def _listen(self, pool: asyncpg.Pool) -> None:
        lost = asyncio.Event()

        def notified(conn: object, pid: int, channel: str, payload: str) -> None:
            if payload.isdigit():
                self._jobs.add(int(payload))

        async with pool.acquire() as conn:
            conn.add_termination_listener(lambda _: lost.set())
            await conn.add_listener(CHANNEL, notified)
            try:
                self._jobs |= {r["job_id"] for r in await conn.fetch(_JOBS)}
                self._listening = True
                await lost.wait()
            finally:
                if not conn.is_closed():
                    await conn.remove_listener(CHANNEL, notified)
        raise ConnectionError("the listening connection closed")


def _lost(err: BaseException) -> bool:
    """Listen again after a lost connection (anything else, a cancel included, ends `watch`)."""
    if not isinstance(err, OSError | asyncpg.PostgresError | asyncpg.InterfaceError):
        return False
    log.warning("redaction listener lost (%r); live pushes wait for the store", err)
    return True
