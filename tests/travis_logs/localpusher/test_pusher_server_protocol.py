"""Protocol 7 details of the local Pusher server, its fan-out, and the `pusher-server` command."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.helpers import free_port
from tests.pusher_support import (
    APP,
    PusherJs,
    rest_client,
    serve,
    server_config,
    socket_url,
    subscribe,
    websocket,
)
from travis_logs.checks import wait_for_port
from travis_logs.localpusher.app import create_app


@pytest_asyncio.fixture(scope="module")
async def port() -> AsyncIterator[int]:
    async with serve(create_app(server_config())) as server_port:
        yield server_port


async def _trigger(port: int, channel: str, data: str) -> None:
    await asyncio.to_thread(rest_client(port).trigger, [channel], "job:log", data)


@pytest.mark.parametrize(
    ("key", "protocol", "code"),
    [("wrong-key", "7", 4001), (APP.key, None, 4008), (APP.key, "3", 4007)],
)
async def test_handshake_refusals_close_with_protocol_codes(
    port: int, key: str, protocol: str | None, code: int
) -> None:
    """An unknown app key or protocol version gets pusher:error and the matching close code."""
    async with connect(socket_url(port, key=key, protocol=protocol)) as ws:
        error = json.loads(await ws.recv())
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert error["event"] == "pusher:error" and error["data"]["code"] == code
    assert closed.value.rcvd is not None and closed.value.rcvd.code == code


async def test_ping_gets_pong(port: int) -> None:
    """pusher:ping is answered with pusher:pong, which keeps pusher-js connected."""
    async with websocket(port) as ws:
        await ws.send(json.dumps({"event": "pusher:ping", "data": {}}))
        assert json.loads(await ws.recv())["event"] == "pusher:pong"


async def test_unsubscribe_stops_events(port: int, job_id: int) -> None:
    """After pusher:unsubscribe a socket hears nothing more from that channel."""
    channel = f"job-{job_id}"
    async with websocket(port) as ws:
        await subscribe(ws, channel)
        await ws.send(json.dumps({"event": "pusher:unsubscribe", "data": {"channel": channel}}))
        await ws.send(json.dumps({"event": "pusher:ping", "data": {}}))
        assert json.loads(await ws.recv())["event"] == "pusher:pong"  # unsubscribe is done
        await _trigger(port, channel, "after")
        await ws.send(json.dumps({"event": "pusher:ping", "data": {}}))
        assert json.loads(await ws.recv())["event"] == "pusher:pong"


@pytest.mark.parametrize("channel", ["bad channel!", "presence-job-1", "private-job-1"])
async def test_refused_subscriptions_get_an_error(port: int, channel: str) -> None:
    """Invalid names, presence channels and unsigned private channels are refused."""
    async with websocket(port) as ws:
        await ws.send(json.dumps({"event": "pusher:subscribe", "data": {"channel": channel}}))
        reply = json.loads(await ws.recv())
    assert reply["event"] == "pusher:error" and reply["data"]["message"]


async def test_one_event_reaches_every_subscribed_pusher_js_client(
    port: int, job_id: int, pusher_js: None
) -> None:
    """One trigger fans out to 200 pusher-js connections, none dropped."""
    channel = f"job-{job_id}"
    async with PusherJs.run(port, [channel], clients=200) as js:
        await js.ready(timeout=60)
        await _trigger(port, channel, "everyone ✊")
        await js.wait_for(lambda c: len(c.of_kind("event")) == 200)
    assert {e["client"] for e in js.of_kind("event")} == set(range(200))
    assert {e["data"] for e in js.of_kind("event")} == {'"everyone ✊"'}


@pytest.mark.services  # a travis-logs process
def test_help_says_it_is_a_development_component() -> None:
    """`travis-logs pusher-server --help` tells it is for development only."""
    out = subprocess.run(
        [sys.executable, "-m", "workers.cli", "pusher-server", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "development component" in " ".join(out.split())


@pytest.mark.services  # a travis-logs process
async def test_command_serves_and_stops_on_sigterm() -> None:
    """The command accepts the package's requests and exits 0 on SIGTERM."""
    server_port = free_port()
    env = {
        **os.environ,
        "PUSHER_APP_ID": APP.app_id,
        "PUSHER_KEY": APP.key,
        "PUSHER_SECRET": APP.secret,
        "DEV_PUSHER_PORT": str(server_port),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "workers.cli", "pusher-server", env=env
    )
    try:
        await wait_for_port("127.0.0.1", server_port, "DEV_PUSHER_PORT", timeout=15)
        await _trigger(server_port, "job-1", "hello")
    finally:
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 10)
    assert code == 0
