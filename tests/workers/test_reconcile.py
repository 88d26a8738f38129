"""`travis-logs reconcile` on an adopted travis-logs database, with the real worker."""

from __future__ import annotations

import io
from collections.abc import Iterator
from functools import partial

from rich.console import Console
from temporalio.client import Client

from activities.reconcile import Outcome
from tests.helpers import assert_eventually
from tests.workers.operations_support import adopted_database, runs_of, worker_for
from tests.workflows.support import handle_of
from travis_logs.settings import Settings
from workers.reconcile import Options, run
from workflows.models import LogState


async def _one_completed_run(client: Client, job_id: int) -> None:
    assert await runs_of(client, job_id) == ["COMPLETED"]


def _quiet() -> Console:
    return Console(file=io.StringIO(), width=120)


async def test_every_adopted_log_reaches_done_once(
    settings: Settings, temporal_client: Client, new_job_id: Iterator[int]
) -> None:
    """Each log not done gets one run that ends done with a byte-exact archive; a second
    reconcile (while they run, and after) starts nothing."""
    async with adopted_database(settings, new_job_id) as adopted:
        logs = adopted.seeded.logs
        async with worker_for(temporal_client, adopted):
            first = await run(adopted.settings, Options(), _quiet())
            acted = {i.job_id: i.outcome for i in first if i.outcome != Outcome.DONE}
            assert set(acted) == {log.job_id for s, log in logs.items() if s != "purged"}
            assert Outcome.FAILED not in acted.values()
            again = await run(adopted.settings, Options(), _quiet())
            # Runs still open are left alone, or (silent ones) woken: none is started again.
            assert {i.outcome for i in again} <= {Outcome.OPEN, Outcome.DONE, Outcome.WOKEN}
            for job_id in acted:
                state = await handle_of(temporal_client, job_id).result()
                assert state.state == LogState.DONE, job_id
        for log in logs.values():
            assert await adopted.store.fetch(log.job_id) == log.log.encode(), log.state
            if log.state != "purged":
                await assert_eventually(partial(_one_completed_run, temporal_client, log.job_id))
        rows = await adopted.pool.fetch(
            "SELECT job_id FROM logs WHERE content IS NOT NULL OR purged_at IS NULL"
            " OR EXISTS (SELECT 1 FROM log_parts p WHERE p.log_id = logs.id)"
        )
        assert rows == []
        assert await run(adopted.settings, Options(), _quiet()) == []


async def test_dry_run_starts_nothing(
    settings: Settings, temporal_client: Client, new_job_id: Iterator[int]
) -> None:
    """--dry-run plans a start for each log that is not done and starts none."""
    async with adopted_database(settings, new_job_id, shape="2025") as adopted:
        planned = await run(adopted.settings, Options(dry_run=True), _quiet())
        assert sum(i.outcome == Outcome.PLANNED for i in planned) == 7
        for log in adopted.seeded.logs.values():
            assert await runs_of(temporal_client, log.job_id) == []
