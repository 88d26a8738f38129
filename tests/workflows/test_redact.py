"""The `redact` update on the dev server: a done log's archive is rewritten, masked, once."""

from __future__ import annotations

import asyncpg
import pytest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.worker import Worker

from api.redactions import RedactionRequest, stage
from tests.helpers import joined, log_row, store_parts
from tests.workflows.support import handle_of, record, send
from travis_logs.archive_store import ArchiveStore
from travis_logs.settings import Settings
from workflows.client import redact

SECRET = "s3cr3t-✓-token"
PARTS = {0: f"key={SECRET[:4]}", 1: f"{SECRET[4:]}\n", 2: f"again {SECRET}\n", 3: ""}


def request(job_id: int, **extra: object) -> RedactionRequest:
    return RedactionRequest(job_id, "ops", "leak", **extra)  # type: ignore[arg-type]


async def test_redacting_a_done_log_rewrites_its_archive_once(
    worker: Worker,
    temporal_client: Client,
    quick: Settings,
    pool: asyncpg.Pool,
    store: ArchiveStore,
    job_id: int,
) -> None:
    """The update starts a run (update-with-start), answers once the masked log is verified."""
    await store_parts(pool, job_id, PARTS, final=3)
    await (await send(temporal_client, quick, job_id, PARTS, final=3)).result()
    inp = await stage(pool, request(job_id, strings=[SECRET]))
    result = await redact(temporal_client, quick, job_id, inp)
    assert (result.occurrences, result.changed, result.archived) == (2, True, True)
    stars = "*" * len(SECRET.encode())
    assert await store.fetch(job_id) == joined(PARTS).replace(SECRET, stars).encode()
    handle = handle_of(temporal_client, job_id)
    state = await handle.result()
    assert [r.occurrences for r in state.redactions] == [2]
    assert (await log_row(pool, job_id))["purged_at"] is not None
    await record(handle, "redact")


async def test_a_range_off_a_character_boundary_fails_the_update(
    worker: Worker, temporal_client: Client, quick: Settings, pool: asyncpg.Pool, job_id: int
) -> None:
    """The activity refuses for good; the audit row says why and no string stays behind."""
    await store_parts(pool, job_id, PARTS, final=3)
    inp = await stage(pool, request(job_id, strings=["key"], ranges=[(12, 14)]))  # inside ✓
    with pytest.raises(WorkflowUpdateFailedError):
        await redact(temporal_client, quick, job_id, inp)
    row = await pool.fetchrow("SELECT error FROM log_redactions WHERE id = $1", inp.redaction_id)
    assert "inside a UTF-8 character" in row["error"]
    rules = "SELECT count(*) FROM log_redaction_rules WHERE redaction_id = $1"
    assert await pool.fetchval(rules, inp.redaction_id) == 0
