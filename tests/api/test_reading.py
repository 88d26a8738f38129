"""Reads while late parts wait to be merged: GET /logs and the viewer serve what the merge will.

Between a late part being stored and the workflow merging it (the quiet period plus the
merge, 10 s by default) the content (or archive) and the parts disagree. A read in that
window must apply aggregation's rule: stored parts whose numbers the log does not hold are
spliced in by number; numbers it holds (re-deliveries, divergent re-sends) are skipped.
"""

from __future__ import annotations

import asyncpg
import httpx
from temporalio.testing import ActivityEnvironment

from activities.aggregate import AggregateActivities
from activities.models import AggregateInput
from api.reading import read_log, viewer_log
from tests.api.conftest import TOKEN, running_api
from tests.helpers import archived_and_purged, log_row, store_parts
from tests.workflows.proxy import BlackholeProxy
from travis_logs.archive_store import ArchiveStore
from travis_logs.settings import Settings

env = ActivityEnvironment()


def lines(numbers: range | list[int], tag: str = "") -> dict[int, str]:
    return {n: f"part {n}{tag}\n" for n in numbers}


async def aggregate(pool: asyncpg.Pool, store: ArchiveStore, job_id: int) -> str:
    await env.run(AggregateActivities(pool, store).aggregate_log, AggregateInput(job_id))
    content: str = (await log_row(pool, job_id))["content"]
    return content


async def served(pool: asyncpg.Pool, store: ArchiveStore, job_id: int) -> str:
    """What GET /logs/:job_id and the viewer serve now; they must agree."""
    log = await read_log(pool, store, "job_id", job_id)
    assert log is not None
    view = await viewer_log(pool, store, job_id, inline_bytes=2**30)
    assert view.complete and view.content == log["content"]
    content: str = log["content"]
    return content


async def test_a_purged_log_with_late_and_divergent_parts_reads_as_the_merge_will_leave_it(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """Archive [1..9, 11..15]; stored since [0, 8', 9', 10, 13', 18]: served 0..15, 18, no primes."""
    sent = {**lines(range(1, 10)), **lines(range(11, 16)), 16: ""}
    await store_parts(pool, job_id, sent, final=16)
    await archived_and_purged(pool, store, job_id)
    late = {**lines([0, 10, 18]), **lines([8, 9, 13], tag=" re-sent differently")}
    await store_parts(pool, job_id, late)
    expected = "".join(
        text for _, text in sorted({**late, **sent}.items()) if "re-sent" not in text
    )

    assert await served(pool, store, job_id) == expected  # in the window
    assert await aggregate(pool, store, job_id) == expected  # what the merge writes
    assert await served(pool, store, job_id) == expected  # after it


async def test_an_aggregated_log_reads_with_the_parts_stored_after_its_aggregation(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """Aggregated [1..5]; stored since [0, 3', 7]: served 0..5, 7 with the first part 3."""
    sent = {**lines(range(1, 6)), 6: ""}
    await store_parts(pool, job_id, sent, final=6)
    await aggregate(pool, store, job_id)
    late = {**lines([0, 7]), **lines([3], tag=" again")}
    await store_parts(pool, job_id, late)
    expected = "".join(text for _, text in sorted({**late, **sent}.items()) if "again" not in text)

    assert await served(pool, store, job_id) == expected
    assert await aggregate(pool, store, job_id) == expected
    assert await served(pool, store, job_id) == expected


async def test_a_purged_log_is_503_when_s3_does_not_answer(
    pool: asyncpg.Pool, store: ArchiveStore, api_settings: Settings, job_id: int
) -> None:
    """The archive read has a deadline: S3 that swallows the request is 503, not a hung GET."""
    await store_parts(pool, job_id, {0: "archived\n", 1: ""}, final=1)
    await archived_and_purged(pool, store, job_id)
    swallower = BlackholeProxy()
    port = await swallower.start()
    silent = api_settings.model_copy(
        update={"s3_endpoint_url": f"http://127.0.0.1:{port}", "s3_request_timeout_s": 0.5}
    )
    headers = {"Authorization": f"token {TOKEN}"}
    try:
        async with (
            running_api(silent) as url,
            httpx.AsyncClient(base_url=url, headers=headers) as api,
        ):
            response = await api.get(f"/logs/{job_id}")
    finally:
        await swallower.close()
    assert response.status_code == 503 and "archive" in response.text


async def test_a_streaming_log_over_the_inline_limit_carries_no_parts(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """Parts only, no final part: up to the limit the page carries them; past it, only the
    parts' size (the page reads the log by range, then follows it live)."""
    sent = lines(range(1, 6))
    await store_parts(pool, job_id, sent)
    size = len("".join(sent.values()).encode())
    carried = await viewer_log(pool, store, job_id, inline_bytes=size)
    assert not carried.complete and not carried.ranged
    assert [p["number"] for p in carried.parts] == [1, 2, 3, 4, 5]
    ranged = await viewer_log(pool, store, job_id, inline_bytes=size - 1)
    assert not ranged.complete and ranged.ranged and ranged.size == size
    assert ranged.parts == [] and ranged.content == ""
