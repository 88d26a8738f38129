"""`status`, `rearchive --query` and `force-aggregate` against a real worker, database and S3."""

from __future__ import annotations

import io
from collections.abc import Iterator

import asyncpg
from rich.console import Console
from temporalio.client import Client

from tests.helpers import assert_eventually, open_store, store_parts
from tests.workflows.faults import AfterActivity, corrupt_archive
from tests.workflows.support import fast, handle_of, send
from travis_logs.settings import Settings
from workers import lifecycle_command, status
from workers.temporal_worker import build_worker, lifecycle_activities
from workflows.diagnosis import Level
from workflows.models import LOG_STATE

PARTS = {0: "a\n", 1: "b\n", 2: ""}


async def _line(settings: Settings, job_id: int, level: Level) -> str:
    r = await status.report(settings, job_id)
    assert r.verdict.level is level, r.verdict.line
    assert "\n" not in r.verdict.line
    return r.verdict.line


async def test_status_of_streaming_verify_failed_and_done_logs(
    temporal_client: Client, settings: Settings, pool: asyncpg.Pool, new_job_id: Iterator[int]
) -> None:
    """One line each: streaming (its run asleep), verify_failed (exit 1), and done after
    `rearchive --query`; `force-aggregate` finishes the streaming log without its final part."""
    streaming, failing = next(new_job_id), next(new_job_id)
    limited = fast(settings, logs_max_archive_attempts=2)
    quiet = Console(file=io.StringIO())
    async with open_store(limited) as store:
        corrupt = AfterActivity("archive_log", corrupt_archive(store), times=99)
        activities = lifecycle_activities(pool, store)
        async with build_worker(temporal_client, limited, activities, interceptors=[corrupt]):
            await store_parts(pool, streaming, {0: "x\n"})
            # Opened as the ingest opens it: the run sleeps until its final part, so the
            # status reads the run's start, and force-aggregate's update wakes it.
            await send(temporal_client, limited, streaming, {0: "x\n"}, None, opens=True)
            await store_parts(pool, failing, PARTS, final=2)
            handle = await send(temporal_client, limited, failing, PARTS, final=2)

            async def failed() -> None:
                described = await handle.describe()
                assert described.typed_search_attributes.get(LOG_STATE) == "verify_failed"

            await assert_eventually(failed)
            line = await _line(limited, streaming, Level.OK)
            assert line.startswith("streaming:")
            line = await _line(limited, failing, Level.ATTENTION)
            assert line.startswith("verify_failed:") and "rearchive" in line
            assert status.EXIT[Level.ATTENTION] == 1

            corrupt.remaining = 0
            query = f'LogState = "verify_failed" AND JobId = {failing}'
            request = lifecycle_command.Request("rearchive", query=query, reason="fixed S3")
            outcomes = await lifecycle_command.run(limited, request, quiet)
            assert [(o.job_id, o.ok, o.archived) for o in outcomes] == [(failing, True, True)]
            await handle.result()
            assert (await _line(limited, failing, Level.OK)).startswith("done:")

            request = lifecycle_command.Request("force-aggregate", job_ids=(streaming,))
            [forced] = await lifecycle_command.run(limited, request, quiet)
            assert forced.ok, forced.error
            await handle_of(temporal_client, streaming).result()
            assert (await _line(limited, streaming, Level.OK)).startswith("done:")
        assert await store.fetch(failing) == b"a\nb\n"
        assert await store.fetch(streaming) == b"x\n"


async def test_status_of_an_unknown_job(settings: Settings, job_id: int) -> None:
    """No row and no workflow: `missing`, exit code 3."""
    line = await _line(settings, job_id, Level.MISSING)
    assert line.startswith("unknown:") and status.EXIT[Level.MISSING] == 3
