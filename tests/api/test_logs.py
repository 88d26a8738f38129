"""travis-api's log routes on the real lifecycle: PUT, GET (hot, aggregated, purged), multi."""

from __future__ import annotations

import base64
from datetime import datetime

import asyncpg
import httpx
import pytest

from tests.api.conftest import Keys
from tests.helpers import assert_eventually, open_store
from travis_logs.settings import Settings

LOG_KEYS = {
    "id",
    "job_id",
    "content",
    "created_at",
    "updated_at",
    "aggregated_at",
    "archived_at",
    "purged_at",
    "removed_at",
    "archiving",
    "archive_verified",
    "@type",
}


async def archived(settings: Settings, job_id: int) -> bytes | None:
    async with open_store(settings) as store:
        return await store.fetch(job_id)


async def send_parts(
    client: httpx.AsyncClient, keys: Keys, job_id: int, texts: list[str], final: bool
) -> None:
    """POST the texts as parts 1..n of the job; the last one final when `final`."""
    items = [
        {
            "@type": "log_part",
            "encoding": "base64",
            "job_id": job_id,
            "number": n,
            "content": base64.b64encode(text.encode()).decode(),
            "final": final and n == len(texts),
            "tok": keys.token_for(str(job_id)),
        }
        for n, text in enumerate(texts, start=1)
    ]
    response = await client.post("/log-parts/multi", json=items)
    assert (response.status_code, response.headers["X-Dropped-Log-Parts"]) == (204, "0")


async def test_put_then_get_round_trip(
    client: httpx.AsyncClient, api_settings: Settings, job_id: int
) -> None:
    """PUT stores the cleaned body and answers the row; GET by job id and by id return it."""
    put = await client.put(f"/logs/{job_id}", content=b"hello\x00 w\xf1orld\n")
    assert put.status_code == 200, put.text
    row = put.json()
    assert set(row) == LOG_KEYS | {"removed_by"}
    assert (row["@type"], row["job_id"], row["content"]) == ("log", job_id, "hello world\n")
    assert row["removed_by"] is None and row["removed_at"] is None
    assert datetime.fromisoformat(row["aggregated_at"])

    by_job = (await client.get(f"/logs/{job_id}")).json()
    # travis-api's fields, plus ones it ignores: completeness, the lifecycle's timeline and
    # the redactions' audit, and the size limit's `truncated`.
    extra = {"complete", "missing_parts", "timeline", "redactions", "truncated"}
    assert set(by_job) == LOG_KEYS | {"removed_by_id"} | extra
    assert (by_job["complete"], by_job["missing_parts"], by_job["redactions"]) == (True, [], [])
    assert by_job["timeline"]["replaced"] is not None
    assert (by_job["id"], by_job["content"], by_job["removed_by_id"]) == (
        row["id"],
        "hello world\n",
        None,
    )
    by_id = (await client.get(f"/logs/{row['id']}?by=id")).json()
    assert by_id["job_id"] == job_id
    assert (await client.get(f"/logs/{job_id}/id")).json() == {"id": row["id"], "@type": "log"}

    async def archive_follows() -> None:
        assert await archived(api_settings, job_id) == b"hello world\n"

    await assert_eventually(archive_follows, timeout=20)


async def test_put_again_replaces_and_empty_body_clears(
    client: httpx.AsyncClient, job_id: int
) -> None:
    """A second PUT replaces the content; an empty body clears content and aggregated_at."""
    assert (await client.put(f"/logs/{job_id}", content=b"first")).status_code == 200
    second = (await client.put(f"/logs/{job_id}", content=b"second")).json()
    assert second["content"] == "second"
    cleared = await client.put(f"/logs/{job_id}", content=b"")
    assert cleared.status_code == 200
    assert (cleared.json()["content"], cleared.json()["aggregated_at"]) == (None, None)
    assert (await client.get(f"/logs/{job_id}")).json()["content"] is None


async def test_removal_records_who_and_when(client: httpx.AsyncClient, job_id: int) -> None:
    """`removed_by=<id>` marks a removal: PUT answers removed_by, GET answers removed_by_id."""
    await client.put(f"/logs/{job_id}", content=b"secret output")
    put = await client.put(f"/logs/{job_id}?removed_by=42&source=api", content=b"Log removed")
    assert put.status_code == 200
    assert put.json()["removed_by"] == 42
    assert datetime.fromisoformat(put.json()["removed_at"])
    got = (await client.get(f"/logs/{job_id}")).json()
    assert (got["removed_by_id"], got["content"]) == (42, "Log removed")
    assert "removed_by" not in got


async def test_get_aggregates_hot_parts_on_demand_without_writing(
    client: httpx.AsyncClient, keys: Keys, pool: asyncpg.Pool, job_id: int
) -> None:
    """While parts are hot, GET joins them in number order and leaves the row untouched."""
    await send_parts(client, keys, job_id, ["one ", "two ", "three"], final=False)
    got = (await client.get(f"/logs/{job_id}")).json()
    assert (got["content"], got["aggregated_at"]) == ("one two three", None)
    row = await pool.fetchrow("SELECT content, aggregated_at FROM logs WHERE job_id = $1", job_id)
    assert (row["content"], row["aggregated_at"]) == (None, None)


async def test_get_after_purge_is_served_from_the_archive(
    client: httpx.AsyncClient, keys: Keys, pool: asyncpg.Pool, api_settings: Settings, job_id: int
) -> None:
    """A finished log is aggregated, archived, verified, purged; GET then reads it from S3."""
    texts = ["\x1b[32mgreen\x1b[0m\n", "done ✓\n", ""]
    await send_parts(client, keys, job_id, texts, final=True)

    async def purged() -> asyncpg.Record:
        row = await pool.fetchrow("SELECT * FROM logs WHERE job_id = $1", job_id)
        assert row is not None and row["purged_at"] is not None
        return row

    row = await assert_eventually(purged, timeout=30)
    assert row["content"] is None
    assert await pool.fetchval("SELECT count(*) FROM log_parts WHERE log_id = $1", row["id"]) == 0
    got = (await client.get(f"/logs/{job_id}")).json()
    assert got["content"] == "".join(texts)
    assert got["archive_verified"] is True
    assert datetime.fromisoformat(got["purged_at"])


async def test_missing_logs_are_404(client: httpx.AsyncClient, job_id: int) -> None:
    """A job without a log is 404 on GET /logs/:id (by job or log id) and /logs/:job_id/id."""
    for path in (f"/logs/{job_id}", f"/logs/{job_id}?by=id", f"/logs/{job_id}/id"):
        response = await client.get(path)
        assert (response.status_code, response.json()) == (404, {"message": "log not found"})


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/logs/abc"),
        ("GET", "/logs/1.5"),
        ("GET", "/logs/-3"),
        ("GET", f"/logs/{2**63}"),
        ("GET", "/logs/1?by=uuid"),
        ("GET", "/logs/abc/id"),
        ("PUT", "/logs/abc"),
        ("PUT", "/logs/1?removed_by=someone"),
        ("PUT", "/logs/1?removed_by=0"),
    ],
)
async def test_malformed_ids_are_400(client: httpx.AsyncClient, method: str, path: str) -> None:
    """Non-integer or out-of-range ids and unknown `by` values are 400, not 500."""
    response = await client.request(method, path, content=b"x")
    assert response.status_code == 400
    assert response.json()["message"]


async def test_put_larger_than_limit_is_413(
    client: httpx.AsyncClient, api_settings: Settings, job_id: int
) -> None:
    """A body above API_MAX_BODY_BYTES is 413; nothing changes."""
    body = b"x" * (api_settings.api_max_body_bytes + 1)
    response = await client.put(f"/logs/{job_id}", content=body)
    assert response.status_code == 413
    assert "API_MAX_BODY_BYTES" in response.json()["message"]
    assert (await client.get(f"/logs/{job_id}")).status_code == 404


async def test_logs_multi_replaces_each_log(
    client: httpx.AsyncClient, new_job_id, job_id: int
) -> None:
    """POST /logs/multi sets every item's content and removal; answers 204."""
    other = next(new_job_id)
    items = [
        {"job_id": job_id, "content": "first log"},
        {"job_id": str(other), "content": "gone", "removed_by": 7},
    ]
    response = await client.post("/logs/multi", json=items)
    assert (response.status_code, response.content) == (204, b"")
    assert (await client.get(f"/logs/{job_id}")).json()["content"] == "first log"
    removed = (await client.get(f"/logs/{other}")).json()
    assert (removed["content"], removed["removed_by_id"]) == ("gone", 7)


@pytest.mark.parametrize(
    "bad",
    [{"content": "no job"}, {"job_id": "12a"}, {"job_id": True}, {"job_id": 1.5}, "x"],
)
async def test_logs_multi_with_a_bad_item_changes_nothing(
    client: httpx.AsyncClient, job_id: int, bad: object
) -> None:
    """One item without a numeric job_id makes the whole request 400, as in travis-logs."""
    response = await client.post("/logs/multi", json=[{"job_id": job_id, "content": "a"}, bad])
    assert response.status_code == 400
    assert (await client.get(f"/logs/{job_id}")).status_code == 404
