"""GET /logs/:job_id/text: whole, by byte range and by line range, from the database and,
once purged, from S3 by an HTTP Range request that moves only the bytes asked for."""

from __future__ import annotations

import asyncio
import contextlib

import asyncpg
import httpx
import pytest
from temporalio.testing import ActivityEnvironment

from activities.aggregate import AggregateActivities
from activities.models import AggregateInput
from api.errors import ApiError
from api.log_text import log_text
from api.sessions import GRANT, issue
from tests.api.conftest import TOKEN, running_api
from tests.helpers import archived_and_purged, store_parts
from travis_logs.archive_store import ArchiveStore
from travis_logs.settings import Settings

env = ActivityEnvironment()
TEXT = "text/plain; charset=utf-8"
# "é" is two bytes in UTF-8: byte 5 is its first, byte 6 its second.
PARTS = {1: "line é1\n", 2: "line 2\n", 3: "line 3\n", 4: "line 4"}
BODY = "".join(PARTS.values()).encode()


@pytest.fixture(params=["live", "aggregated", "purged"])
async def log(
    request: pytest.FixtureRequest, pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> int:
    """A log of BODY: parts only, aggregated into the content column, or purged to S3."""
    await store_parts(pool, job_id, PARTS, final=4)
    if request.param == "aggregated":
        await env.run(AggregateActivities(pool, store).aggregate_log, AggregateInput(job_id))
    elif request.param == "purged":
        await archived_and_purged(pool, store, job_id)
        assert (await pool.fetchval("SELECT content FROM logs WHERE job_id = $1", job_id)) is None
    return job_id


async def text(client: httpx.AsyncClient, job_id: int, range_: str | None) -> httpx.Response:
    headers = {"Range": range_} if range_ is not None else {}
    return await client.get(f"/logs/{job_id}/text", headers=headers)


async def test_whole_log_is_served_with_accept_ranges(client: httpx.AsyncClient, log: int) -> None:
    got = await text(client, log, None)
    assert got.status_code == 200
    assert got.headers["content-type"] == TEXT
    assert got.headers["accept-ranges"] == "bytes"
    assert got.content == BODY


@pytest.mark.parametrize(
    ("range_", "start", "end"),
    [
        ("bytes=0-3", 0, 3),
        ("bytes=8-", 8, len(BODY) - 1),
        ("bytes=-6", len(BODY) - 6, len(BODY) - 1),
    ],
)
async def test_a_byte_range_is_206_with_content_range(
    client: httpx.AsyncClient, log: int, range_: str, start: int, end: int
) -> None:
    got = await text(client, log, range_)
    assert got.status_code == 206
    assert got.headers["content-range"] == f"bytes {start}-{end}/{len(BODY)}"
    assert got.content == BODY[start : end + 1]


async def test_a_range_that_cuts_a_character_serves_its_bytes_as_they_are(
    client: httpx.AsyncClient, log: int
) -> None:
    got = await text(client, log, "bytes=0-5")
    assert got.status_code == 206
    assert got.content == b"line \xc3"  # half of "é": bytes are bytes


async def test_a_range_past_the_end_is_416_with_the_size(
    client: httpx.AsyncClient, log: int
) -> None:
    got = await text(client, log, f"bytes={len(BODY)}-")
    assert got.status_code == 416
    assert got.headers["content-range"] == f"bytes */{len(BODY)}"
    assert "past the log's end" in got.json()["message"]


async def test_several_ranges_are_ignored_for_the_whole_log(
    client: httpx.AsyncClient, log: int
) -> None:
    got = await text(client, log, "bytes=0-1,4-5")
    assert (got.status_code, got.content) == (200, BODY)


@pytest.mark.parametrize(
    ("lines", "expected"),
    [("2-3", "line 2\nline 3\n"), ("1-1", "line é1\n"), ("4-", "line 4"), ("7-9", "")],
)
async def test_line_ranges(client: httpx.AsyncClient, log: int, lines: str, expected: str) -> None:
    got = await client.get(f"/logs/{log}/text", params={"lines": lines})
    assert (got.status_code, got.text) == (200, expected)


async def test_bad_lines_are_400_and_no_log_is_404(client: httpx.AsyncClient, job_id: int) -> None:
    bad = await client.get(f"/logs/{job_id}/text", params={"lines": "3-1"})
    assert bad.status_code == 400 and "lines" in bad.json()["message"]
    assert (await client.get(f"/logs/{job_id}/text")).status_code == 404


async def test_token_or_the_grant_for_this_job(
    anonymous: httpx.AsyncClient, api_settings: Settings, pool: asyncpg.Pool, job_id: int
) -> None:
    await store_parts(pool, job_id, PARTS, final=4)
    assert (await anonymous.get(f"/logs/{job_id}/text")).status_code == 403
    grant = {"X-Log-Grant": issue(api_settings, GRANT, job_id)}
    assert (await anonymous.get(f"/logs/{job_id}/text", headers=grant)).content == BODY
    other = await anonymous.get(f"/logs/{job_id + 1}/text", headers=grant)
    assert other.status_code == 403


class CountingProxy:
    """Relays 127.0.0.1:<port> to S3 and counts the bytes S3 sends back."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._server: asyncio.Server | None = None
        self.received = 0

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer, True))
        finally:
            up_writer.close()
            writer.close()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, count: bool = False
    ) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                self.received += len(data) if count else 0
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()


async def test_a_purged_log_range_fetches_only_the_bytes_asked_from_s3(
    api_settings: Settings, s3_endpoint: str, pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """A 1 MiB archive; a 100-byte slice moves the slice and HTTP heads, not the object."""
    big = {n: f"{n:06d} " + "x" * 1017 + "\n" for n in range(1, 1025)}  # 1 KiB lines
    await store_parts(pool, job_id, big, final=1024)
    await archived_and_purged(pool, store, job_id)
    host, port = s3_endpoint.removeprefix("http://").split(":")
    proxy = CountingProxy((host, int(port)))
    via_proxy = api_settings.model_copy(
        update={"s3_endpoint_url": f"http://127.0.0.1:{await proxy.start()}"}
    )
    try:
        async with running_api(via_proxy) as url, httpx.AsyncClient(base_url=url) as api:
            headers = {"Authorization": f"token {TOKEN}", "Range": "bytes=-100"}
            before = proxy.received  # the API's own checks at start-up
            got = await api.get(f"/logs/{job_id}/text", headers=headers)
            fetched = proxy.received - before
            before = proxy.received
            lines = await api.get(
                f"/logs/{job_id}/text",
                headers=headers | {"Range": ""},
                params={"lines": "1020-1021"},
            )
            fetched_lines = proxy.received - before
    finally:
        await proxy.close()
    assert got.status_code == 206
    assert got.content == big[1024][-100:].encode()
    assert 100 <= fetched < 100 + 4096  # the slice plus the HEAD's and GET's HTTP heads
    # Lines 1020-1021: the index (about 20 KiB for 1024 parts) and the bytes from the indexed
    # line start 1001 on (24 KiB), not the 1 MiB object.
    assert lines.text == big[1020] + big[1021]
    assert 24 * 1024 <= fetched_lines < 64 * 1024


FOLDED = {
    1: "travis_fold:start:install\r\x1b[0Ktravis_time:start:0a1b\r\x1b[0K$ make\n",
    2: "built\n",
    3: "travis_time:end:0a1b:start=10,finish=40,duration=30\r\x1b[0K\n",
    4: "travis_fold:end:install\r\x1b[0K\nDone.\n",
}


@pytest.mark.parametrize("kept", ["row", "s3"])
async def test_the_index_is_archived_with_the_log_and_served_after_purge(
    client: httpx.AsyncClient, pool: asyncpg.Pool, store: ArchiveStore, job_id: int, kept: str
) -> None:
    """A small log's index is kept in its row, a large one's beside it in S3: either way
    the same index is served after purge."""
    await store_parts(pool, job_id, FOLDED, final=4)
    live = (await client.get(f"/logs/{job_id}/index")).json()  # built from the database
    await archived_and_purged(pool, store, job_id, index_in_s3=kept == "s3")
    in_row = await pool.fetchval("SELECT archive_index FROM logs WHERE job_id = $1", job_id)
    assert (in_row is not None, await store.fetch_index(job_id) is not None) == (
        kept == "row",
        kept == "s3",
    )
    got = await client.get(f"/logs/{job_id}/index")
    assert got.status_code == 200 and got.headers["content-type"] == "application/json"
    index = got.json()
    assert index == live
    sizes = [len(FOLDED[n].encode()) for n in range(1, 5)]
    parts = index["parts"]
    assert (parts["number"], parts["size"]) == ([1, 2, 3, 4], sizes)
    assert parts["offset"] == [0, sizes[0], sum(sizes[:2]), sum(sizes[:3])]
    # The parts' arrival, kept after purge.
    assert parts["arrived_from"] > 0 and None not in parts["arrived_ms"]
    assert [(f["name"], f["line"], f["end_line"]) for f in index["folds"]] == [("install", 1, 4)]
    assert [(t["id"], t["duration"]) for t in index["timers"]] == [("0a1b", 30)]


async def test_a_log_archived_without_an_index_says_so(
    client: httpx.AsyncClient, pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    await store_parts(pool, job_id, PARTS, final=4)
    await archived_and_purged(pool, store, job_id, index_in_s3=True)
    await store.delete_index(job_id)
    got = await client.get(f"/logs/{job_id}/index")
    assert got.status_code == 404 and "without an index" in got.json()["message"]
    lines = await client.get(f"/logs/{job_id}/text", params={"lines": "2-2"})
    assert lines.text == "line 2\n"  # read from the whole object instead


async def test_a_streaming_log_is_sliced_from_the_parts_that_hold_the_range(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """Parts only (no final part yet): every slice, across part boundaries and through a
    two-byte character, is the merged text's, and the size is the parts' sum."""
    await store_parts(pool, job_id, PARTS)
    got = await log_text(pool, store, job_id)
    assert got is not None and got.parts is not None and got.body is None
    assert got.size == len(BODY)
    assert await got.whole() == BODY
    for start in range(len(BODY)):
        for end in range(start, len(BODY), 3):
            assert await got.read(start, end) == BODY[start : end + 1], (start, end)


async def test_a_streaming_log_whose_parts_go_while_it_is_read_is_a_409(
    pool: asyncpg.Pool, store: ArchiveStore, job_id: int
) -> None:
    """A part dropped after the offsets were read (the log cut, replaced or aggregated): a
    clear error, never bytes from the wrong place."""
    await store_parts(pool, job_id, PARTS)
    got = await log_text(pool, store, job_id)
    assert got is not None
    await pool.execute("DELETE FROM log_parts WHERE number = 2 AND log_id = $1", got.log_id)
    assert await got.read(0, 3) == BODY[:4]
    with pytest.raises(ApiError) as err:
        await got.read(0, len(BODY) - 1)
    assert err.value.status_code == 409
