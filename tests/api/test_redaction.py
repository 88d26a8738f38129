"""Audited redaction end to end: RabbitMQ, ingest, Pusher, the API, LogWorkflow, PostgreSQL, S3.

A secret printed in a running log (one occurrence split across two parts) and in the archive
of a purged log is gone from the database, from S3, from later late parts and their Pusher
events; the audit row holds no secret; the rest of the log is byte-identical.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from tests.api.test_claim_check import histories
from tests.api.test_logs import archived
from tests.helpers import assert_eventually, joined, log_row, settings_env
from tests.ingest.ingest_support import (
    broker,
    part,
    publish,
    running_ingest,
    stored_parts,
    wait_stored,
)
from tests.pusher_support import subscribe, websocket
from travis_logs.settings import Settings
from workflows.models import QUERY_STATUS, LogWorkflowState, workflow_id

STARS = "*"


@pytest_asyncio.fixture(scope="module")
async def ingest(
    api_settings: Settings, pool: asyncpg.Pool, temporal_env: WorkflowEnvironment
) -> AsyncIterator[None]:
    """`travis-logs ingest`'s consume loop on the API's queue, pushing to its Pusher server."""
    async with broker(api_settings), running_ingest(api_settings, pool, temporal_env.client):
        yield


async def send(settings: Settings, job_id: int, parts: dict[int, str], final: int | None) -> None:
    async with broker(settings) as (_, topology):
        bodies = [part(job_id, n, text, final=n == final) for n, text in sorted(parts.items())]
        await publish(topology, settings, bodies)


def masked(text: str, secret: str) -> str:
    return text.replace(secret, STARS * len(secret.encode()))


async def holding(pool: asyncpg.Pool, secret: str) -> list[str]:
    """Every database row that holds the secret, by table."""
    found = []
    for table in ("logs", "log_parts", "log_redactions", "log_uploads", "signal_outbox"):
        query = f"SELECT count(*) FROM {table} t WHERE t::text LIKE '%' || $1 || '%'"
        if await pool.fetchval(query, secret):
            found.append(table)
    return found


async def redact(client: httpx.AsyncClient, job_id: int, **body: object) -> httpx.Response:
    payload = {"reason": "leaked token", "requested_by": "ops@example.com", **body}
    return await client.post(f"/logs/{job_id}/redactions", json=payload)


async def late_stored(pool: asyncpg.Pool, job_id: int) -> None:
    assert {6, 7, 8} <= {n for n, _, _ in await stored_parts(pool, job_id)}


async def purged(pool: asyncpg.Pool, job_id: int) -> None:
    row = await log_row(pool, job_id)
    assert row is not None and row["purged_at"] is not None and row["archive_verified"]


async def test_a_running_log_is_redacted_everywhere_and_late_parts_stay_masked(
    client: httpx.AsyncClient,
    ingest: None,
    api_settings: Settings,
    pool: asyncpg.Pool,
    temporal_env: WorkflowEnvironment,
    pusher_port: int,
    job_id: int,
) -> None:
    secret = f"tok-{job_id}-Zq9✓x"
    early = {
        1: "$ make deploy\n",
        2: f"export TOKEN={secret}\n",
        3: f"curl -H 'auth: {secret[:6]}",  # one occurrence split across parts 3 and 4
        4: f"{secret[6:]}' https://example.com\n",
        5: "uploading…\n",
    }
    await send(api_settings, job_id, early, final=None)
    await wait_stored(pool, job_id, 5)

    response = await redact(client, job_id, strings=[secret])
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["occurrences"], result["changed"], result["archived"]) == (2, True, True)

    assert await archived(api_settings, job_id) == masked(joined(early), secret).encode()
    assert await holding(pool, secret) == []
    got = (await client.get(f"/logs/{job_id}")).json()
    assert got["content"] == masked(joined(early), secret)

    # Later parts: masked before they are stored and before they are pushed.
    late = {6: f"retry with {secret}\n", 7: f"again {secret[:3]}", 8: f"{secret[3:]}\n", 9: ""}
    async with websocket(pusher_port) as ws:
        await subscribe(ws, f"job-{job_id}")
        await send(api_settings, job_id, {n: late[n] for n in (6, 7, 8)}, final=None)
        events = [json.loads(await asyncio.wait_for(ws.recv(), 15)) for _ in range(3)]
        await assert_eventually(lambda: late_stored(pool, job_id))
        # Not aggregated yet: a read merges the parts, and masks the secret split across two.
        reading = (await client.get(f"/logs/{job_id}")).json()["content"]
        assert secret not in reading and reading.endswith(masked(late[7] + late[8], secret))
        await send(api_settings, job_id, {9: ""}, final=9)
        events.append(json.loads(await asyncio.wait_for(ws.recv(), 15)))
    pushed = {json.loads(e["data"])["number"]: json.loads(e["data"])["_log"] for e in events}
    assert pushed[6] == masked(late[6], secret)
    assert all(secret not in text for text in pushed.values())

    whole = masked(joined({**early, **late}), secret)

    async def archived_whole() -> None:
        assert await archived(api_settings, job_id) == whole.encode()
        await purged(pool, job_id)

    await assert_eventually(archived_whole, timeout=30)
    assert await holding(pool, secret) == []

    audit = await pool.fetchrow("SELECT * FROM log_redactions WHERE job_id = $1", job_id)
    assert audit["requested_by"] == "ops@example.com" and audit["reason"] == "leaked token"
    assert audit["occurrences"] == 2 and audit["applied_at"] is not None
    assert list(audit["string_sha256"]) == [hashlib.sha256(secret.encode()).hexdigest()]
    # Nor in Temporal: no event of any run of the job's workflow holds it.
    for event in await histories(temporal_env.client, job_id):
        assert secret.encode() not in event and secret.encode("unicode_escape") not in event


async def test_a_purged_log_is_redacted_in_its_archive_and_twice_changes_nothing(
    client: httpx.AsyncClient,
    ingest: None,
    api_settings: Settings,
    pool: asyncpg.Pool,
    temporal_env: WorkflowEnvironment,
    job_id: int,
) -> None:
    secret = f"AKIA{job_id}SECRET"
    parts = {0: "$ env\n", 1: f"AWS_KEY={secret}\n", 2: "ok ✓\n", 3: ""}
    await send(api_settings, job_id, parts, final=3)
    await assert_eventually(lambda: purged(pool, job_id), timeout=30)
    log_before = (await client.get(f"/logs/{job_id}")).json()

    first = await redact(client, job_id, strings=[secret], ranges=[[0, 5]])
    assert first.status_code == 200, first.text
    assert first.json()["changed"] and first.json()["archived"]
    expected = "*****\n" + masked(joined(parts), secret)[6:]
    assert await archived(api_settings, job_id) == expected.encode()
    await assert_eventually(lambda: purged(pool, job_id), timeout=30)
    row = await log_row(pool, job_id)

    again = await redact(client, job_id, strings=[secret], ranges=[[0, 5]])
    assert again.status_code == 200, again.text
    assert (again.json()["changed"], again.json()["occurrences"]) == (False, 0)
    after = await log_row(pool, job_id)
    assert after["content_version"] == row["content_version"]
    assert after["archive_version"] == row["archive_version"]
    assert await archived(api_settings, job_id) == expected.encode()
    assert await holding(pool, secret) == []

    got = (await client.get(f"/logs/{job_id}")).json()
    assert got["content"] == expected
    # travis-api's fields are all still there; `redactions` is an extra one.
    assert set(log_before) - {"redactions"} <= set(got)
    assert [r["occurrences"] for r in got["redactions"]] == [2, 0]
    assert got["redactions"][0]["string_sha256"] == [hashlib.sha256(secret.encode()).hexdigest()]
    handle = temporal_env.client.get_workflow_handle(workflow_id(job_id))
    state = await handle.query(QUERY_STATUS, result_type=LogWorkflowState)
    assert [r.occurrences for r in state.redactions] == [2, 0]


async def test_bad_redaction_requests_get_a_4xx_json(
    client: httpx.AsyncClient, ingest: None, api_settings: Settings, pool: asyncpg.Pool, new_job_id
) -> None:
    job_id, missing = next(new_job_id), next(new_job_id)
    await send(api_settings, job_id, {0: "naïve ✓\n"}, final=None)
    await wait_stored(pool, job_id, 1)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"ranges": [[3, 4]]}, 422, "inside a UTF-8 character"),  # cuts the ï
        ({"ranges": [[0, 999]]}, 422, "beyond the log"),
        ({"ranges": [[4, 2]]}, 400, "below end"),
        ({}, 400, "at least one"),
        ({"strings": [""]}, 400, "strings.0"),
        ({"strings": ["a\u0000b"]}, 400, "NUL"),
        ({"strings": ["x"], "extra": 1}, 400, "extra"),
    ]
    for body, status, words in cases:
        response = await redact(client, job_id, **body)
        assert response.status_code == status, (body, response.text)
        assert words in response.json()["message"], (body, response.text)
    no_reason = await client.post(
        f"/logs/{job_id}/redactions", json={"strings": ["x"], "requested_by": "a"}
    )
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["message"]
    not_json = await client.post(f"/logs/{job_id}/redactions", content=b"{nope")
    assert not_json.status_code == 400 and "message" in not_json.json()
    assert (await redact(client, missing, strings=["x"])).status_code == 404
    # A refused request leaves nothing behind that would mask later parts.
    assert (
        await pool.fetchval("SELECT count(*) FROM log_redaction_rules WHERE job_id = $1", job_id)
        == 0
    )


async def test_an_unauthenticated_redaction_is_refused_before_its_body_is_read(
    anonymous: httpx.AsyncClient, job_id: int
) -> None:
    response = await anonymous.post(f"/logs/{job_id}/redactions", content=b"{not json")
    assert response.status_code == 403
    assert "message" in response.json()
    wrong = await anonymous.post(
        f"/logs/{job_id}/redactions",
        content=b"{not json",
        headers={"Authorization": "token wrong"},
    )
    assert wrong.status_code == 403


async def test_the_cli_reads_secrets_from_stdin_not_argv(
    ingest: None, api_settings: Settings, pool: asyncpg.Pool, log_worker: None, job_id: int
) -> None:
    secret = f"cli-secret-{job_id}"
    await send(api_settings, job_id, {0: f"pw {secret}\n"}, final=None)
    await wait_stored(pool, job_id, 1)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workers.cli",
        "redact",
        str(job_id),
        "--reason",
        "leak",
        "--requested-by",
        "ops",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=settings_env(api_settings),
    )
    out, _ = await asyncio.wait_for(process.communicate(f"{secret}\n".encode()), 90)
    assert process.returncode == 0, out
    assert json.loads(out)["occurrences"] == 1
    assert await archived(api_settings, job_id) == masked(f"pw {secret}\n", secret).encode()


async def test_a_part_sent_over_http_after_a_redaction_is_stored_and_pushed_masked(
    client: httpx.AsyncClient,
    ingest: None,
    api_settings: Settings,
    pool: asyncpg.Pool,
    pusher_port: int,
    job_id: int,
) -> None:
    """The HTTP part routes take the same path: masked before the store and the push."""
    secret = f"http-secret-{job_id}"
    await send(api_settings, job_id, {0: f"a {secret}\n"}, final=None)
    await wait_stored(pool, job_id, 1)
    assert (await redact(client, job_id, strings=[secret])).status_code == 200
    body = {"@type": "log_part", "content": f"b {secret}\n", "final": False}
    async with websocket(pusher_port) as ws:
        await subscribe(ws, f"job-{job_id}")
        assert (await client.put(f"/log-parts/{job_id}/1", json=body)).status_code == 204
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert json.loads(frame["data"])["_log"] == masked(f"b {secret}\n", secret)
    stored = {n: text for n, text, _ in await stored_parts(pool, job_id)}
    assert stored[1] == masked(f"b {secret}\n", secret)
