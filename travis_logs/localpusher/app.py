"""The local Pusher-protocol server as one Starlette app (development component)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from travis_logs.localpusher.hub import Hub
from travis_logs.localpusher.protocol import SocketSession, handshake_problem
from travis_logs.localpusher.rest import EventsApi
from travis_logs.localpusher.signing import AppCredentials
from travis_logs.localpusher.webhooks import WebhookSender


@dataclass(frozen=True)
class ServerConfig:
    app: AppCredentials
    webhook_url: str | None = None
    # Frames one connection may have waiting; a browser further behind is disconnected.
    client_queue: int = 1000


class PusherServer:
    """The hub and its two faces: WebSockets for browsers, HTTP for publishers."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self._webhooks: WebhookSender | None = None
        self.hub = Hub(self._on_occupancy)

    def _on_occupancy(self, channel: str, occupied: bool) -> None:
        if self._webhooks is not None:
            self._webhooks.notify(channel, occupied)

    async def socket(self, ws: WebSocket) -> None:
        await ws.accept()
        problem = handshake_problem(
            self.config.app, ws.path_params["key"], ws.query_params.get("protocol")
        )
        if problem is not None:
            code, message = problem
            await ws.send_json(
                {"event": "pusher:error", "data": {"code": code, "message": message}}
            )
            await ws.close(code, message)
            return
        await SocketSession(self.config.app, self.hub, self.config.client_queue).serve(ws)

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        del app
        async with httpx.AsyncClient(timeout=5) as client:
            self._webhooks = WebhookSender(self.config.app, self.config.webhook_url, client)
            sender = asyncio.create_task(self._webhooks.run())
            try:
                yield
            finally:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
                self._webhooks = None


async def _root(request: Request) -> PlainTextResponse:
    del request
    return PlainTextResponse("travis-logs local Pusher-protocol server (development only)\n")


def create_app(config: ServerConfig) -> Starlette:
    server = PusherServer(config)
    routes = [
        Route("/", _root),
        WebSocketRoute("/app/{key}", server.socket),
        *EventsApi(config.app, server.hub).routes(),
    ]
    app = Starlette(routes=routes, lifespan=server.lifespan)
    app.state.server = server
    return app
