"""The local Pusher-protocol server with the real `pusher` package and real pusher-js (node)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import socket
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
import httpx
import pusher
import pytest
import pytest_asyncio
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.helpers import assert_eventually
from tests.pusher_support import (
    APP,
    PusherJs,
    pusher_settings,
    rest_client,
    serve,
    server_config,
    subscribe,
    websocket,
)
from travis_logs.localpusher.app import create_app
from travis_logs.parts import LogPart
from travis_logs.pusher.occupancy import OccupancyStore
from travis_logs.pusher.publisher import (
    authenticate_channel,
    build_publisher,
    payload_json,
    validate_webhook,
)
from travis_logs.settings import Settings


@pytest_asyncio.fixture(scope="module")
async def server_port() -> AsyncIterator[int]:
    async with serve(create_app(server_config())) as port:
        yield port


@pytest.fixture
def pusher_config(defaults: Settings, server_port: int) -> Settings:
    return pusher_settings(defaults, server_port)


def _auth_app(settings: Settings) -> Starlette:
    """A stand-in for the API's auth route, signing with core.pusher.authenticate_channel."""

    async def auth(request: Request) -> JSONResponse:
        form = dict(parse_qsl((await request.body()).decode()))
        token = authenticate_channel(settings, form["channel_name"], form["socket_id"])
        return JSONResponse(token)

    return Starlette(routes=[Route("/pusher/auth", auth, methods=["POST"])])


async def test_pusher_js_receives_the_exact_part_string(
    pusher_js: None, pusher_config: Settings, job_id: int
) -> None:
    """pusher-js on job-<id> gets the part's data string byte for byte, emoji included."""
    part = LogPart(job_id, 7, "strike! ✊ 🚀 done\r\n", False)
    publisher = build_publisher(pusher_config, None)
    async with PusherJs.run(pusher_config.pusher_port or 0, [f"job-{job_id}"], frames=True) as js:
        await js.ready()
        await publisher.publish([part])
        await js.wait_for(lambda c: bool(c.of_kind("event")) and bool(c.of_kind("frame")))
    await publisher.aclose()
    assert [f["raw"] for f in js.of_kind("frame")] == [payload_json(part)]
    (event,) = js.of_kind("event")
    assert (event["channel"], event["event"]) == (f"job-{job_id}", "job:log")
    assert event["data"] == payload_json(part)
    assert json.loads(event["data"])["_log"] == "strike! ✊ 🚀 done\r\n"


async def test_private_channel_needs_the_auth_endpoint(
    pusher_js: None, defaults: Settings, server_port: int, job_id: int
) -> None:
    """private-job-<id> subscribes only with a token from the auth endpoint, then gets parts."""
    settings = pusher_settings(defaults, server_port, pusher_private_channels=True)
    channel = f"private-job-{job_id}"
    publisher = build_publisher(settings, None)
    async with serve(_auth_app(settings)) as auth_port:
        endpoint = f"http://127.0.0.1:{auth_port}/pusher/auth"
        async with (
            PusherJs.run(server_port, [channel], authEndpoint=endpoint) as authorised,
            PusherJs.run(server_port, [channel]) as unauthorised,
        ):
            await authorised.ready()
            await unauthorised.ready()
            await publisher.publish([LogPart(job_id, 1, "secret ✊", False)])
            await authorised.wait_for(lambda c: bool(c.of_kind("event")))
            await asyncio.sleep(0.2)  # time for a wrongly delivered event to show up
    await publisher.aclose()
    assert [e["channel"] for e in authorised.of_kind("subscribed")] == [channel]
    assert [e["channel"] for e in unauthorised.of_kind("subscription_error")] == [channel]
    assert unauthorised.of_kind("event") == []


async def test_forged_channel_token_is_refused(
    pusher_js: None, defaults: Settings, server_port: int, job_id: int
) -> None:
    """A token signed with another secret does not open a private channel."""
    forger = pusher_settings(defaults, server_port, pusher_secret=SecretStr("not-the-secret"))
    channel = f"private-job-{job_id}"
    async with (
        serve(_auth_app(forger)) as auth_port,
        PusherJs.run(
            server_port, [channel], authEndpoint=f"http://127.0.0.1:{auth_port}/pusher/auth"
        ) as js,
    ):
        await js.wait_for(lambda c: bool(c.of_kind("error")))
        await asyncio.to_thread(rest_client(server_port).trigger, channel, "job:log", "{}")
        await asyncio.sleep(0.2)
    assert "Invalid signature" in js.of_kind("error")[0]["error"]
    assert js.of_kind("subscribed") == [] and js.of_kind("event") == []


async def test_pusher_package_requests_are_accepted(server_port: int, job_id: int) -> None:
    """trigger, trigger_batch and channels_info of the `pusher` package reach subscribers."""
    client = rest_client(server_port)
    channel = f"job-{job_id}"
    async with websocket(server_port) as ws:
        await subscribe(ws, channel)
        assert await asyncio.to_thread(client.trigger, [channel], "job:log", "one ✊") == {}
        batch = [{"channel": channel, "name": "job:log", "data": "two"}]
        assert await asyncio.to_thread(client.trigger_batch, batch) == {}
        listing = await asyncio.to_thread(client.channels_info, "job-")
        got = [json.loads(await ws.recv()) for _ in range(2)]
    assert [m["data"] for m in got] == ["one ✊", "two"]
    assert channel in listing["channels"]


@pytest.mark.parametrize(
    ("secret", "body", "changes", "status"),
    [
        pytest.param(APP.secret, None, {}, 200, id="genuine"),
        pytest.param("wrong-secret", None, {}, 401, id="wrong-secret"),
        pytest.param(APP.secret, b'{"batch":[]}', {}, 401, id="body-changed"),
        pytest.param(APP.secret, None, {"auth_timestamp": "1000"}, 401, id="stale-timestamp"),
        pytest.param(APP.secret, None, {"auth_key": "other"}, 401, id="other-key"),
        pytest.param(APP.secret, None, {"auth_signature": None}, 401, id="no-signature"),
    ],
)
async def test_request_signature_is_checked(
    server_port: int,
    secret: str,
    body: bytes | None,
    changes: dict[str, str | None],
    status: int,
) -> None:
    """A request whose signature, body, timestamp or key does not check out is a 401."""
    client = rest_client(server_port, secret=secret)
    batch = [{"channel": "job-1", "name": "job:log", "data": "x"}]
    request = client._pusher_client.trigger_batch.make_request(batch)
    params = {**request.query_params, **changes}
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"http://127.0.0.1:{server_port}{request.path}",
            params={k: v for k, v in params.items() if v is not None},
            content=body or request.body,
            headers=request.headers,
        )
    assert response.status_code == status


async def test_wrong_secret_raises_bad_auth_in_the_package(server_port: int) -> None:
    """The `pusher` package sees the 401 as PusherBadAuth."""
    client = rest_client(server_port, secret="wrong-secret")
    with pytest.raises(pusher.errors.PusherBadAuth):
        await asyncio.to_thread(client.trigger, ["job-1"], "job:log", "x")


async def test_batch_of_more_than_ten_is_refused(server_port: int) -> None:
    """Like Pusher, batch_events takes at most 10 events a call."""
    batch = [{"channel": "job-1", "name": "job:log", "data": str(i)} for i in range(11)]
    with pytest.raises(pusher.errors.PusherBadRequest):
        await asyncio.to_thread(rest_client(server_port).trigger_batch, batch)


def _existence_app(settings: Settings, store: OccupancyStore, seen: list[Any]) -> Starlette:
    """A stand-in for the API's POST /pusher/existence: validate_webhook, then the store."""

    async def existence(request: Request) -> Response:
        body = await request.body()
        headers = request.headers
        events = validate_webhook(
            settings, headers.get("X-Pusher-Key"), headers.get("X-Pusher-Signature"), body
        )
        if events is None:
            return Response(status_code=401)
        seen.extend(events)
        await store.apply(events)
        return Response(status_code=204)

    return Starlette(routes=[Route("/pusher/existence", existence, methods=["POST"])])


async def test_webhooks_flip_stored_occupancy(
    pusher_js: None, defaults: Settings, pool: asyncpg.Pool, job_id: int
) -> None:
    """Subscribing sends a signed channel_occupied, leaving sends channel_vacated."""
    store, channel = OccupancyStore(pool), f"job-{job_id}"
    seen: list[Any] = []
    settings = pusher_settings(defaults, 1)
    async with serve(_existence_app(settings, store, seen)) as api_port:
        url = f"http://127.0.0.1:{api_port}/pusher/existence"
        async with serve(create_app(server_config(webhook_url=url))) as port:
            async with PusherJs.run(port, [channel]) as js:
                await js.ready()
                assert await assert_eventually(lambda: _occupied(store, channel, True))
            await assert_eventually(lambda: _occupied(store, channel, False))
    assert seen == [
        {"name": "channel_occupied", "channel": channel},
        {"name": "channel_vacated", "channel": channel},
    ]


async def _occupied(store: OccupancyStore, channel: str, expected: bool) -> bool:
    assert (channel in await store.occupied([channel])) is expected
    return True


async def test_slow_browser_is_dropped_without_slowing_the_publisher(
    pusher_js: None, pusher_config: Settings, job_id: int
) -> None:
    """A socket that stops reading is disconnected; publishing and other browsers go on."""
    channel, app = f"job-{job_id}", create_app(server_config(client_queue=20))
    hub, sent = app.state.server.hub, 0
    async with serve(app) as port:
        publisher = build_publisher(pusher_settings(pusher_config, port), None)
        async with PusherJs.run(port, [channel]) as fast, _stalled_socket(port, channel):
            await fast.ready()
            # Until kernel buffers are full the stalled socket looks fine; push until it is not.
            while hub.subscriber_count(channel) == 2 and sent < 3000:
                # Random text: permessage-deflate would shrink repeated characters to nothing.
                batch = [
                    LogPart(job_id, sent + i, secrets.token_urlsafe(6000), False) for i in range(50)
                ]
                await publisher.publish(batch)
                await publisher.flush()  # the HTTP calls to the server, answered at once
                sent += len(batch)
            await fast.wait_for(lambda c: len(c.of_kind("event")) == sent, timeout=30)
        await publisher.aclose()
    assert hub.subscriber_count(channel) == 0 and hub.dropped > 0
    assert [json.loads(e["data"])["number"] for e in fast.of_kind("event")] == list(range(sent))


@contextlib.asynccontextmanager
async def _stalled_socket(port: int, channel: str) -> AsyncIterator[None]:
    """A subscriber that then reads nothing, with a tiny receive buffer."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    async with websocket(port, sock=sock, max_queue=1, close_timeout=0.1) as ws:
        await subscribe(ws, channel)
        yield
