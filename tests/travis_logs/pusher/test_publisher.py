"""The Pusher publisher, webhook validation and channel auth, against the local server."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY
from pydantic import SecretStr
from websockets.asyncio.client import ClientConnection

from tests.helpers import free_port
from tests.pusher_support import APP, pusher_settings, serve, server_config, subscribe, websocket
from travis_logs.errors import ConfigError
from travis_logs.localpusher.app import create_app
from travis_logs.localpusher.signing import channel_auth_ok
from travis_logs.parts import LogPart
from travis_logs.pusher.occupancy import OccupancyCache, OccupancyStore
from travis_logs.pusher.publisher import (
    PusherPublisher,
    authenticate_channel,
    build_publisher,
    channel_name,
    payload_json,
    validate_webhook,
)
from travis_logs.pusher.transport import AiohttpTransport, Event
from travis_logs.settings import Settings

# Fails a publisher that waits on a silent Pusher instead of hanging the suite; it is a
# hang guard far above any normal run, not a timing bound.
GUARD_S = 30


def counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("travis_logs_pusher_events_total", {"outcome": outcome}) or 0


def errors_counted() -> float:
    return sum(
        s.value
        for metric in REGISTRY.collect()
        if metric.name == "travis_logs_pusher_errors"
        for s in metric.samples
        if s.name.endswith("_total")
    )


@pytest_asyncio.fixture(scope="module")
async def server_port() -> AsyncIterator[int]:
    async with serve(create_app(server_config())) as port:
        yield port


@pytest.fixture
def config(defaults: Settings, server_port: int) -> Settings:
    return pusher_settings(defaults, server_port)


async def _receive(ws: ClientConnection, count: int, timeout: float = 10) -> list[dict[str, Any]]:
    async with asyncio.timeout(timeout):
        return [json.loads(await ws.recv()) for _ in range(count)]


def test_payload_is_the_exact_travis_string() -> None:
    """Keys id, _log, number, final in that order, compact, with UTF-8 kept (reference §3)."""
    assert payload_json(LogPart(1919, 204, "strike! ✊", False)) == (
        '{"id":1919,"_log":"strike! ✊","number":204,"final":false}'
    )
    assert payload_json(LogPart(5, 2147483647, 'say "hi"\n', True)) == (
        '{"id":5,"_log":"say \\"hi\\"\\n","number":2147483647,"final":true}'
    )


def test_channel_names() -> None:
    """job-<id>, or private-job-<id> when private channels are configured."""
    assert channel_name(1919, private=False) == "job-1919"
    assert channel_name(1919, private=True) == "private-job-1919"


async def test_a_subscriber_gets_the_exact_string(
    config: Settings, server_port: int, job_id: int
) -> None:
    """Signed by the `pusher` package, sent by aiohttp: the server checks the signature, and a
    subscriber receives payload_json's string unchanged (non-ASCII included)."""
    publisher = build_publisher(config, None)
    part = LogPart(job_id, 3, "emoji 🚀 ✊ and ümlauts", True)
    async with websocket(server_port) as ws:
        await subscribe(ws, channel_name(job_id, private=False))
        await publisher.publish([part])
        (message,) = await _receive(ws, 1)
    await publisher.aclose()
    assert message == {"event": "job:log", "channel": f"job-{job_id}", "data": payload_json(part)}


class _Recording(AiohttpTransport):
    """The real transport, remembering the channels of every batch it sends."""

    batches: list[list[str]]

    async def trigger_batch(self, batch: list[Event]) -> None:
        self.batches.append([e["channel"] for e in batch])
        await super().trigger_batch(batch)


async def test_parts_go_out_in_batches_of_ten_in_order(
    config: Settings, server_port: int, job_id: int
) -> None:
    """25 parts of one job are 3 trigger_batch calls (10, 10, 5) and arrive in order."""
    transport = _Recording(config, 1)
    transport.batches = []
    publisher = PusherPublisher(transport)
    parts = [LogPart(job_id, n, f"line {n}", n == 24) for n in range(25)]
    async with websocket(server_port) as ws:
        await subscribe(ws, f"job-{job_id}")
        await publisher.publish(parts)
        await publisher.flush()
        messages = await _receive(ws, 25)
    await publisher.aclose()
    assert [len(b) for b in transport.batches] == [10, 10, 5]
    assert [m["data"] for m in messages] == [payload_json(p) for p in parts]


async def test_parts_trickling_in_for_many_channels_share_one_call(
    config: Settings, server_port: int, new_job_id: Iterator[int]
) -> None:
    """Ten parts of ten jobs, offered one at a time, go out in one trigger_batch call.

    The linger is far longer than the test needs, so the batch fills by itself; a sender
    that took what it found would send ten calls of one event.
    """
    jobs = [next(new_job_id) for _ in range(10)]
    transport = _Recording(config, 2)
    transport.batches = []
    publisher = PusherPublisher(transport, lanes=2, linger_s=GUARD_S)
    async with websocket(server_port) as ws:
        for job in jobs:
            await subscribe(ws, f"job-{job}")
        for job in jobs:
            publisher.offer([LogPart(job, 1, "x", False)])
            await asyncio.sleep(0)  # let the senders run between parts
        messages = await _receive(ws, 10)
    await publisher.aclose()
    assert transport.batches == [[f"job-{job}" for job in jobs]]
    assert {m["channel"] for m in messages} == {f"job-{job}" for job in jobs}


async def test_calls_reuse_at_most_one_connection_per_lane(
    config: Settings, server_port: int, new_job_id: Iterator[int]
) -> None:
    """Many calls from 2 lanes open at most 2 connections (kept alive, no handshake per call)."""
    async with _counting_proxy(server_port) as (port, accepted):
        settings = config.model_copy(update={"pusher_port": port, "pusher_concurrency": 2})
        publisher = build_publisher(settings, None)
        sent = counted("sent")
        for n in range(20):
            publisher.offer([LogPart(next(new_job_id), n, "x", False) for _ in range(10)])
            await publisher.flush()
        await publisher.aclose()
    assert counted("sent") - sent == 200
    assert 1 <= len(accepted) <= 2


async def test_a_wrongly_signed_call_is_refused_and_counted(
    config: Settings, server_port: int, job_id: int
) -> None:
    """The local server checks Pusher's auth signature: a wrong secret is a counted 401."""
    other = config.model_copy(update={"pusher_secret": SecretStr("not-the-secret")})
    publisher = build_publisher(other, None)
    failed = counted("failed")
    bad_auth = REGISTRY.get_sample_value(
        "travis_logs_pusher_errors_total", {"error": "PusherBadAuth"}
    )
    publisher.offer([LogPart(job_id, 1, "x", False)])
    await publisher.flush()
    await publisher.aclose()
    assert counted("failed") - failed == 1
    after = REGISTRY.get_sample_value("travis_logs_pusher_errors_total", {"error": "PusherBadAuth"})
    assert (after or 0) - (bad_auth or 0) == 1


async def test_parallel_senders_keep_each_channel_in_order(
    config: Settings, server_port: int, new_job_id: Iterator[int]
) -> None:
    """With 8 senders at once, every job's parts still arrive in number order."""
    jobs = [next(new_job_id) for _ in range(20)]
    publisher = build_publisher(config.model_copy(update={"pusher_concurrency": 8}), None)
    async with websocket(server_port) as ws:
        for job in jobs:
            await subscribe(ws, f"job-{job}")
        for n in range(30):  # interleaved batches, as ingest hands them over
            await publisher.publish([LogPart(job, n, f"{n}", False) for job in jobs])
        messages = await _receive(ws, 600)
    await publisher.aclose()
    for job in jobs:
        numbers = [
            json.loads(m["data"])["number"] for m in messages if m["channel"] == f"job-{job}"
        ]
        assert numbers == list(range(30))


async def test_existence_check_skips_unwatched_channels(
    config: Settings, server_port: int, pool: asyncpg.Pool, new_job_id: Iterator[int]
) -> None:
    """With the check on, only occupied channels get parts; the skipped ones are counted."""
    watched, vacated = next(new_job_id), next(new_job_id)
    store = OccupancyStore(pool)
    await store.mark(f"job-{watched}", True)
    await store.mark(f"job-{vacated}", True)
    await store.mark(f"job-{vacated}", False)
    settings = config.model_copy(update={"pusher_existence_check": True})
    publisher = build_publisher(settings, OccupancyCache(store, ttl_s=1.0))
    skipped = counted("skipped")
    async with websocket(server_port) as ws:
        await subscribe(ws, f"job-{watched}")
        await subscribe(ws, f"job-{vacated}")
        await publisher.publish(
            [LogPart(j, n, "x", False) for n in range(3) for j in (vacated, watched)]
        )
        await publisher.flush()
        messages = await _receive(ws, 3)
        with pytest.raises(TimeoutError):
            await _receive(ws, 1, timeout=0.3)  # nothing from the vacated channel
    await publisher.aclose()
    assert {m["channel"] for m in messages} == {f"job-{watched}"}
    assert counted("skipped") - skipped == 3


async def test_unreachable_pusher_costs_ingest_nothing(defaults: Settings, job_id: int) -> None:
    """Publishing to a closed port raises nothing; every failed part is counted.

    That publishing never waits on Pusher is the silent-server test below (a wall-clock
    bound here failed on a loaded machine and measured nothing a refused connection shows).
    """
    publisher = build_publisher(pusher_settings(defaults, _closed_port()), None)
    failed, errors = counted("failed"), errors_counted()
    parts = [LogPart(job_id, n, "x", False) for n in range(2000)]
    await publisher.publish(parts)
    await publisher.flush()
    await publisher.aclose()
    assert counted("failed") - failed == 2000
    assert errors_counted() - errors == 200  # one per trigger_batch call


async def test_silent_pusher_fills_the_queue_and_drops_not_waits(
    defaults: Settings, job_id: int
) -> None:
    """A Pusher that accepts but never answers: publish never waits on it, overflow is counted.

    Pusher's timeout is a minute, so one publish (or the close) waiting on the silent server
    would hold the test for a minute and trip the guard; no request may even have timed out.
    """
    async with _silent_server() as port:
        settings = pusher_settings(defaults, port, pusher_timeout_s=60, pusher_queue_size=40)
        publisher = build_publisher(settings, None)
        dropped, failed = counted("dropped"), counted("failed")
        async with asyncio.timeout(GUARD_S):
            for n in range(500):
                await publisher.publish([LogPart(job_id + n % 4, n, "x", False)])
            await publisher.aclose(timeout=0.5)
    assert counted("dropped") - dropped >= 300
    assert counted("failed") == failed


async def test_too_large_part_is_counted_and_others_still_go(
    config: Settings, server_port: int, job_id: int
) -> None:
    """A part over Pusher's 10 KB limit is skipped alone, not with its whole batch."""
    publisher = build_publisher(config, None)
    too_large = counted("too_large")
    small = LogPart(job_id, 2, "small", False)
    async with websocket(server_port) as ws:
        await subscribe(ws, f"job-{job_id}")
        await publisher.publish([LogPart(job_id, 1, "✊" * 4000, False), small])
        (message,) = await _receive(ws, 1)
    await publisher.aclose()
    assert message["data"] == payload_json(small)
    assert counted("too_large") - too_large == 1


def test_missing_credentials_are_a_config_error(defaults: Settings) -> None:
    """Without PUSHER_APP_ID/KEY/SECRET the publisher refuses to start, naming them."""
    with pytest.raises(ConfigError, match="PUSHER_APP_ID"):
        build_publisher(defaults.model_copy(update={"pusher_key": None}), None)


def test_existence_check_needs_an_occupancy_cache(config: Settings) -> None:
    """PUSHER_EXISTENCE_CHECK without an occupancy cache is a configuration error."""
    with pytest.raises(ConfigError, match="PUSHER_EXISTENCE_CHECK"):
        build_publisher(config.model_copy(update={"pusher_existence_check": True}), None)


def _webhook(secret: str, time_ms: float | None = None) -> tuple[bytes, str]:
    stamp = time.time() * 1000 if time_ms is None else time_ms
    events = [{"name": "channel_occupied", "channel": "job-1"}]
    body = json.dumps({"time_ms": int(stamp), "events": events}).encode()
    return body, hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_genuine_webhook_gives_its_events(config: Settings) -> None:
    """A webhook signed with the app secret yields its events."""
    body, signature = _webhook(APP.secret)
    assert validate_webhook(config, APP.key, signature, body) == [
        {"name": "channel_occupied", "channel": "job-1"}
    ]


@pytest.mark.parametrize(
    ("key", "secret", "age_ms", "tamper"),
    [
        pytest.param(APP.key, "other-secret", 0, False, id="wrong-signature"),
        pytest.param("other-key", APP.secret, 0, False, id="wrong-key"),
        pytest.param(APP.key, APP.secret, 0, True, id="body-changed"),
        pytest.param(APP.key, APP.secret, 600_000, False, id="replayed-later"),
        pytest.param(None, APP.secret, 0, False, id="no-key-header"),
    ],
)
def test_bad_webhooks_are_refused(
    config: Settings, key: str | None, secret: str, age_ms: int, tamper: bool
) -> None:
    """A wrong key or signature, a changed body or an old webhook gives None (a 401)."""
    body, signature = _webhook(secret, time.time() * 1000 - age_ms)
    if tamper:
        body = body.replace(b"job-1", b"job-2")
    assert validate_webhook(config, key, signature, body) is None


def test_webhook_body_that_is_not_an_object_is_refused(config: Settings) -> None:
    """Signed garbage (a JSON list, invalid UTF-8) is refused, not an exception."""
    for body in (b"[1, 2]", b"\xff\xfe"):
        signature = hmac.new(APP.secret.encode(), body, hashlib.sha256).hexdigest()
        assert validate_webhook(config, APP.key, signature, body) is None


def test_channel_auth_token_is_what_the_server_checks(config: Settings) -> None:
    """authenticate_channel signs "<socket_id>:<channel>" the way the server verifies it."""
    token = authenticate_channel(config, "private-job-7", "123.456")
    assert channel_auth_ok(APP, "123.456", "private-job-7", token["auth"])
    assert not channel_auth_ok(APP, "123.457", "private-job-7", token["auth"])
    other = config.model_copy(update={"pusher_secret": SecretStr("x")})
    assert not channel_auth_ok(
        APP,
        "123.456",
        "private-job-7",
        authenticate_channel(other, "private-job-7", "123.456")["auth"],
    )
    with pytest.raises(ValueError):
        authenticate_channel(config, "private-job-7", "not-a-socket-id")


@contextlib.asynccontextmanager
async def _counting_proxy(port: int) -> AsyncIterator[tuple[int, list[int]]]:
    """A TCP proxy to `port` on loopback; yields its port and a list that grows per connection."""
    accepted: list[int] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(len(accepted))
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1], accepted


def _closed_port() -> int:
    return free_port()  # nothing listens there once the probe socket is closed


@contextlib.asynccontextmanager
async def _silent_server() -> AsyncIterator[int]:
    """Accepts connections and never answers, like a black-holed Pusher."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
