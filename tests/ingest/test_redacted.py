"""Which jobs' live pushes wait for the masked store: learned by LISTEN, never missed."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg

from ingest.redacted import CHANNEL, RedactedJobs
from tests.helpers import assert_eventually


async def test_a_notified_job_is_deferred_and_every_job_is_while_not_listening(
    pool: asyncpg.Pool, new_job_id
) -> None:
    job, other = next(new_job_id), next(new_job_id)
    jobs = RedactedJobs()
    assert not jobs.defers(job)  # no watch started: the HTTP path pushes after its store anyway
    watching = asyncio.create_task(jobs.watch(pool))
    await asyncio.sleep(0)  # the task starts, as it does before the ingest's first delivery
    try:
        assert jobs.defers(other)  # started, not listening yet: nothing is pushed unmasked

        async def listening() -> None:
            assert not jobs.defers(other)

        await assert_eventually(listening)
        await pool.execute("SELECT pg_notify($1, $2)", CHANNEL, str(job))

        async def notified() -> None:
            assert jobs.defers(job)

        await assert_eventually(notified)
        assert not jobs.defers(other)
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
    assert jobs.defers(other)  # the listener is gone: every push waits for its store
