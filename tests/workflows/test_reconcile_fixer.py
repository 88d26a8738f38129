"""Reconciliation's starts are exact: a second start of an open log's workflow does nothing."""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
from temporalio.client import Client
from temporalio.worker import Worker

from activities.reconcile_plan import Action
from tests.helpers import assert_eventually, store_parts
from tests.workflows.support import handle_of
from travis_logs.ratelimit import RateLimiter
from travis_logs.settings import Settings
from workflows.log_workflow import LogWorkflow
from workflows.reconcile import TemporalFixer


async def test_start_and_force_happen_once_per_open_run(
    temporal_client: Client,
    quick: Settings,
    pool: asyncpg.Pool,
    worker: Worker,
    new_job_id: Iterator[int],
) -> None:
    """fix() starts (or force-starts) a run once; again while it is open it answers False,
    and visibility reports the run as open."""
    waiting, forced = next(new_job_id), next(new_job_id)
    slow = quick.model_copy(update={"logs_force_after_s": 3600})
    fixer = TemporalFixer(temporal_client, slow, RateLimiter(0))
    await store_parts(pool, waiting, {0: "a\n"})
    await store_parts(pool, forced, {0: "b\n"})
    assert await fixer.fix(waiting, Action.START) is True
    assert await fixer.fix(waiting, Action.START) is False
    assert await fixer.fix(waiting, Action.FORCE) is False

    async def listed() -> None:
        assert await fixer.open_jobs([waiting, forced]) == {waiting}

    await assert_eventually(listed)
    # A forced run closes once it is purged: the purge delay keeps this one open.
    held = slow.model_copy(update={"logs_purge_delay_s": 3600})
    held_fixer = TemporalFixer(temporal_client, held, RateLimiter(0))
    assert await held_fixer.fix(forced, Action.FORCE) is True
    assert await held_fixer.fix(forced, Action.FORCE) is False

    async def archived() -> None:
        state = await handle_of(temporal_client, forced).query(LogWorkflow.status)
        assert state.stats.aggregations == 1 and state.state == "archived"

    await assert_eventually(archived)
    await handle_of(temporal_client, forced).terminate("test over")
    await handle_of(temporal_client, waiting).terminate("test over")
