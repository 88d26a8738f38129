"""S3 requests under a deadline: an endpoint that reads and never answers fails them, fast."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from botocore.exceptions import EndpointConnectionError

from tests.helpers import assert_eventually, free_port, open_store
from tests.workflows.proxy import BlackholeProxy
from travis_logs.archive_store import ArchiveStore, sha256_hex
from travis_logs.errors import S3Timeout
from travis_logs.settings import Settings
from travis_logs.transfer import CountingBody, Progress, Tally, TransferLimits, pieces

BODY = b"x" * 200_000


@pytest_asyncio.fixture
async def swallower() -> AsyncIterator[BlackholeProxy]:
    """A server that reads every request and never answers one."""
    server = BlackholeProxy()
    await server.start()
    yield server
    await server.close()


@pytest_asyncio.fixture
async def silent_store(
    defaults: Settings, swallower: BlackholeProxy
) -> AsyncIterator[ArchiveStore]:
    port = swallower_port(swallower)
    settings = defaults.model_copy(
        update={"s3_endpoint_url": f"http://127.0.0.1:{port}", "s3_request_timeout_s": 0.3}
    )
    async with open_store(settings) as store:
        yield store


def swallower_port(server: BlackholeProxy) -> int:
    assert server._server is not None
    port: int = server._server.sockets[0].getsockname()[1]
    return port


async def test_an_upload_nobody_answers_fails_its_deadline_with_the_body_sent(
    silent_store: ArchiveStore, swallower: BlackholeProxy
) -> None:
    """No `Expect: 100-continue` wait: the body goes out, the answer never comes, S3Timeout."""
    progress = Progress()
    with pytest.raises(S3Timeout):
        await silent_store.put(1, BODY, version=1, parts=1, if_match=None, progress=progress)
    assert progress.mark().phase == "put" and progress.mark().bytes == len(BODY)

    async def received_whole() -> None:
        # One request: abandoned at its deadline, not retried on the same connection.
        (request,) = swallower.swallowed
        assert request.endswith(BODY)
        assert b"expect:" not in request.lower()

    await assert_eventually(received_whole)


async def test_a_read_nobody_answers_fails_its_deadline(silent_store: ArchiveStore) -> None:
    """HEAD and GET are bounded the same way."""
    with pytest.raises(S3Timeout):
        await silent_store.head(1)
    with pytest.raises(S3Timeout):
        await silent_store.fetch(1)


def test_the_deadline_grows_with_the_body() -> None:
    """A base for the exchange plus the body at the minimum rate."""
    limits = TransferLimits(request_s=10, min_bytes_per_s=1 << 20)
    assert limits.seconds() == 10 and limits.seconds(5 << 20) == 15


async def test_a_request_to_a_dead_endpoint_names_the_connection_error(defaults: Settings) -> None:
    """Abandoned at its deadline or failed by botocore: either way it says it could not connect.

    An operator reading the failure of an archive during an S3 outage learns the cause, not
    only that time ran out.
    """
    dead = f"http://127.0.0.1:{free_port()}"
    settings = defaults.model_copy(update={"s3_endpoint_url": dead, "s3_request_timeout_s": 0.3})
    async with open_store(settings) as store:
        with pytest.raises((S3Timeout, EndpointConnectionError)) as caught:
            await store.head(1)
    assert "Could not connect to the endpoint URL" in str(caught.value), caught.value


async def chunks_of(body: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    """`body` cut into chunks of the given sizes, cycling through them."""
    at, turn = 0, 0
    while at < len(body):
        size = sizes[turn % len(sizes)]
        yield body[at : at + size]
        at, turn = at + size, turn + 1


@pytest.mark.parametrize("sizes", [[1], [3, 5], [7], [8], [9], [100]])
async def test_pieces_are_the_part_size_but_the_last_and_join_to_the_bytes(
    sizes: list[int],
) -> None:
    body = bytes(range(256)) * 3 + b"tail"
    got = [piece async for piece in pieces(chunks_of(body, sizes), 8)]
    assert b"".join(got) == body
    assert all(len(piece) == 8 for piece in got[:-1]) and 0 < len(got[-1]) <= 8


async def test_no_chunks_make_no_piece() -> None:
    assert [piece async for piece in pieces(chunks_of(b"", [4]), 8)] == []


def test_a_tally_fed_in_pieces_is_the_tally_of_the_whole() -> None:
    body = "héllo ✓ wörld\n".encode() * 1000
    tally = Tally()
    for at in range(0, len(body), 7):  # cuts inside multibyte characters too
        tally.update(body[at : at + 7])
    assert (tally.size, tally.sha256) == (len(body), sha256_hex(body))
    assert (Tally.of(body).size, Tally.of(body).sha256) == (tally.size, tally.sha256)


def test_a_counting_body_reports_bytes_of_the_whole_object() -> None:
    """A later part's body counts on from the parts sent before it."""
    progress = Progress()
    body = CountingBody(b"abcdef", progress, offset=100)
    body.read(4)
    assert progress.mark().bytes == 104
    body.read()
    assert progress.mark().bytes == 106
