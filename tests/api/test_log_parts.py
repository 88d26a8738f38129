"""Log parts over HTTP: GET /log-parts filters, PUT /log-parts and POST /log-parts/multi."""

from __future__ import annotations

import asyncio
import base64
import json

import asyncpg
import httpx
import pytest
from temporalio.client import Client

from api.sessions import GRANT, issue
from tests.api.conftest import Keys
from tests.helpers import assert_eventually
from tests.pusher_support import subscribe, websocket
from travis_logs.settings import Settings
from workflows.models import workflow_id


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def item(
    keys: Keys, job_id: int, number: int | str, text: str, **extra: object
) -> dict[str, object]:
    return {
        "@type": "log_part",
        "encoding": "base64",
        "job_id": job_id,
        "number": number,
        "content": b64(text),
        "final": False,
        "tok": keys.token_for(str(job_id)),
        **extra,
    }


async def store(client: httpx.AsyncClient, keys: Keys, job_id: int, numbers: list[int]) -> None:
    """Store parts `numbers` of the job (text "p<n>;"), none of them final."""
    items = [item(keys, job_id, n, f"p{n};") for n in numbers]
    response = await client.post("/log-parts/multi", json=items)
    assert response.status_code == 204, response.text
    assert response.headers["X-Dropped-Log-Parts"] == "0"


async def numbers(client: httpx.AsyncClient, job_id: int, query: str = "") -> list[int]:
    response = await client.get(f"/log-parts/{job_id}?{query}")
    assert response.status_code == 200, response.text
    return [p["number"] for p in response.json()["log_parts"]]


async def test_parts_come_in_number_order_and_after_is_strict(
    client: httpx.AsyncClient, keys: Keys, job_id: int
) -> None:
    """Parts stored out of order are listed by number; `after=n` lists only those above n."""
    await store(client, keys, job_id, [3, 1, 2, 5])
    body = (await client.get(f"/log-parts/{job_id}")).json()
    assert body["@type"] == "log_parts"
    assert body["job_id"] == job_id
    assert [(p["number"], p["content"], p["final"]) for p in body["log_parts"]] == [
        (1, "p1;", False),
        (2, "p2;", False),
        (3, "p3;", False),
        (5, "p5;", False),
    ]
    assert all(isinstance(p["id"], int) for p in body["log_parts"])
    assert await numbers(client, job_id, "after=2") == [3, 5]
    assert await numbers(client, job_id, "after=-1") == [1, 2, 3, 5]
    assert await numbers(client, job_id, "after=5") == []


async def test_part_numbers_and_require_all(
    client: httpx.AsyncClient, keys: Keys, job_id: int
) -> None:
    """`part_numbers` filters; with `require_all` a missing one gives the 'unavailable' pseudo-part."""
    await store(client, keys, job_id, [1, 2, 3, 5])
    assert await numbers(client, job_id, "part_numbers=5,1,9") == [1, 5]
    assert await numbers(client, job_id, "part_numbers=2,3&after=2") == [3]
    all_there = await numbers(client, job_id, "part_numbers=1,5,1&require_all=true")
    assert all_there == [1, 5]
    response = await client.get(f"/log-parts/{job_id}?part_numbers=1,4&require_all=true")
    [pseudo] = response.json()["log_parts"]
    assert pseudo["number"] == 0
    assert pseudo["content"] == "Your log is temporarily unavailable"
    assert isinstance(pseudo["log_id"], int)
    assert await numbers(client, job_id, "part_numbers=1,4&require_all=false") == [1]


async def test_content_false_leaves_the_content_out(
    client: httpx.AsyncClient, keys: Keys, job_id: int
) -> None:
    """`content=false` works (the original ignored it): numbers, ids and flags only."""
    await store(client, keys, job_id, [1, 2])
    parts = (await client.get(f"/log-parts/{job_id}?content=false")).json()["log_parts"]
    assert [sorted(p) for p in parts] == [["final", "id", "number"]] * 2
    with_content = (await client.get(f"/log-parts/{job_id}?content=true")).json()["log_parts"]
    assert [p["content"] for p in with_content] == ["p1;", "p2;"]


async def test_aggregated_log_answers_with_a_pseudo_part(
    client: httpx.AsyncClient, keys: Keys, pool: asyncpg.Pool, job_id: int
) -> None:
    """Once a log is aggregated, GET /log-parts says 'log aggregated' instead of listing parts."""
    await store(client, keys, job_id, [1])
    await pool.execute(
        "UPDATE logs SET content = 'p1;', aggregated_at = now() WHERE job_id = $1", job_id
    )
    [pseudo] = (await client.get(f"/log-parts/{job_id}")).json()["log_parts"]
    log_id = await pool.fetchval("SELECT id FROM logs WHERE job_id = $1", job_id)
    assert pseudo == {"number": 0, "log_id": log_id, "content": "log aggregated"}


@pytest.mark.parametrize(
    "query",
    [
        "after=abc",
        "after=99999999999",
        "part_numbers=1,x",
        "part_numbers=-1",
        "require_all=maybe",
        "content=perhaps",
    ],
)
async def test_bad_parameters_are_400(client: httpx.AsyncClient, job_id: int, query: str) -> None:
    """Malformed filters are 400 with a message, never a 500."""
    response = await client.get(f"/log-parts/{job_id}?{query}")
    assert response.status_code == 400
    assert response.json()["message"]


async def test_unknown_job_and_bad_id(client: httpx.AsyncClient, job_id: int) -> None:
    """A job without a log is 404; a non-integer or out-of-range job id is 400."""
    assert (await client.get(f"/log-parts/{job_id}")).status_code == 404
    assert (await client.get("/log-parts/abc")).status_code == 400
    assert (await client.get(f"/log-parts/{2**63}")).status_code == 400


async def test_viewer_grant_reads_only_its_own_job(
    anonymous: httpx.AsyncClient,
    client: httpx.AsyncClient,
    api_settings: Settings,
    keys: Keys,
    job_id: int,
) -> None:
    """The viewer's X-Log-Grant reads that job's parts; for another job it is 403."""
    await store(client, keys, job_id, [1])
    grant = {"X-Log-Grant": issue(api_settings, GRANT, job_id)}
    assert (await anonymous.get(f"/log-parts/{job_id}", headers=grant)).status_code == 200
    other = await anonymous.get(f"/log-parts/{job_id + 1}", headers=grant)
    assert other.status_code == 403


async def test_multi_drops_bad_items_and_keeps_the_good(
    anonymous: httpx.AsyncClient,
    client: httpx.AsyncClient,
    keys: Keys,
    other_keys: Keys,
    job_id: int,
) -> None:
    """Bad items of /log-parts/multi are dropped and counted; every good one is stored."""
    bad = [
        {**item(keys, job_id, 10, "x"), "@type": "nope"},
        {**item(keys, job_id, 11, "x"), "encoding": "utf-8"},
        {**item(keys, job_id, 12, "x"), "content": "not base64!"},
        {**item(keys, job_id, 13, "x"), "tok": other_keys.token_for(str(job_id))},
        {**item(keys, job_id, 14, "x"), "tok": keys.token_for(str(job_id + 1))},
        {**item(keys, job_id, "x", "x")},
        {**item(keys, job_id, 15, "x"), "job_id": "12a"},
        "not an object",
    ]
    good = [item(keys, job_id, 1, "one"), item(keys, job_id, "last", "end", final=True)]
    before = await _dropped(anonymous)
    headers = {"Authorization": f"Bearer {keys.token_for(str(job_id))}"}
    response = await anonymous.post("/log-parts/multi", json=[*bad, *good], headers=headers)
    assert response.status_code == 204
    assert response.headers["X-Dropped-Log-Parts"] == str(len(bad))
    parts = (await client.get(f"/log-parts/{job_id}")).json()["log_parts"]
    assert [(p["number"], p["content"]) for p in parts] == [(1, "one"), (2147483647, "end")]
    assert await _dropped(anonymous) - before == len(bad)


async def _dropped(c: httpx.AsyncClient) -> float:
    text = (await c.get("/metrics")).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("travis_logs_api_dropped_log_parts_total{")
    )


@pytest.mark.parametrize("body", [b"{}", b"not json", b'"x"', b"42"])
async def test_multi_body_that_is_not_an_array_is_400(
    client: httpx.AsyncClient, body: bytes
) -> None:
    """A /log-parts/multi body that is not a JSON array is 400."""
    response = await client.post("/log-parts/multi", content=body)
    assert response.status_code == 400
    assert response.json()["message"]


@pytest.mark.parametrize(
    ("number", "body", "status"),
    [
        ("1", {"@type": "log", "content": b64("x"), "encoding": "base64"}, 400),
        ("1", {"@type": "log_part", "content": b64("x"), "encoding": "utf-8"}, 400),
        ("1", {"@type": "log_part", "content": "%%%", "encoding": "base64"}, 400),
        ("abc", {"@type": "log_part", "content": b64("x"), "encoding": "base64"}, 400),
        ("2147483648", {"@type": "log_part", "content": b64("x"), "encoding": "base64"}, 400),
        ("1", {"@type": "log_part", "content": b64("x" * 20_000), "encoding": "base64"}, 413),
    ],
)
async def test_bad_single_part_is_refused(
    client: httpx.AsyncClient, job_id: int, number: str, body: dict[str, str], status: int
) -> None:
    """A wrong @type or encoding, bad base64 or number is 400; a part above MAX_PART_BYTES 413."""
    response = await client.put(f"/log-parts/{job_id}/{number}", json=body)
    assert response.status_code == status
    assert response.json()["message"]
    assert (await client.get(f"/log-parts/{job_id}")).status_code == 404  # nothing stored


async def test_http_part_is_stored_pushed_and_signalled(
    client: httpx.AsyncClient,
    temporal_client: Client,
    pusher_port: int,
    job_id: int,
) -> None:
    """A part sent over HTTP reaches Pusher, the database and the job's workflow, like AMQP."""
    body = {"@type": "log_part", "content": b64("héllo\n"), "encoding": "base64", "final": False}
    async with websocket(pusher_port) as ws:
        await subscribe(ws, f"job-{job_id}")
        assert (await client.put(f"/log-parts/{job_id}/0", json=body)).status_code == 204
        frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert frame["event"] == "job:log"
    assert frame["data"] == f'{{"id":{job_id},"_log":"héllo\\n","number":0,"final":false}}'
    assert await numbers(client, job_id) == [0]

    async def started() -> None:
        description = await temporal_client.get_workflow_handle(workflow_id(job_id)).describe()
        assert description.workflow_type == "LogWorkflow"

    await assert_eventually(started, timeout=10)
