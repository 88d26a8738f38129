"""The HTTP events API the `pusher` package calls: events, batch_events and channel info."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from travis_logs.localpusher.hub import Hub
from travis_logs.localpusher.signing import AppCredentials, request_problem

MAX_CHANNELS = 100  # per `events` call
MAX_BATCH = 10  # events per `batch_events` call
MAX_DATA_BYTES = 10_240

# A route's logic after the signature check: (request, decoded JSON body) -> response body.
Handler = Callable[[Request, Any], dict[str, Any]]


class BadRequest(Exception):
    """A well-signed request whose body the API refuses (400, or 413 when too large)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _event(item: Any) -> tuple[str, str, str | None]:
    """(name, data, socket_id) of one event object, validated."""
    if not isinstance(item, dict):
        raise BadRequest("an event must be a JSON object")
    name, data, socket_id = item.get("name"), item.get("data"), item.get("socket_id")
    if not isinstance(name, str) or not name or len(name) > 200:
        raise BadRequest("`name` must be a string of 1 to 200 characters")
    if not isinstance(data, str):
        raise BadRequest("`data` must be a string")
    if len(data.encode()) > MAX_DATA_BYTES:
        raise BadRequest(f"`data` is larger than {MAX_DATA_BYTES} bytes", status=413)
    if socket_id is not None and not isinstance(socket_id, str):
        raise BadRequest("`socket_id` must be a string")
    return name, data, socket_id


def _channels(item: dict[str, Any], limit: int) -> list[str]:
    channels = item.get("channels", [item["channel"]] if "channel" in item else None)
    if not isinstance(channels, list) or not channels or len(channels) > limit:
        raise BadRequest(f"`channels` must list 1 to {limit} channel names")
    if not all(isinstance(c, str) and c for c in channels):
        raise BadRequest("channel names must be non-empty strings")
    return channels


class EventsApi:
    """Routes for one app; each request is checked like Pusher checks it (401 otherwise)."""

    def __init__(self, app: AppCredentials, hub: Hub) -> None:
        self._app = app
        self._hub = hub

    def routes(self) -> list[Route]:
        base = f"/apps/{self._app.app_id}"
        return [
            Route(f"{base}/events", self._guard(self._events), methods=["POST"]),
            Route(f"{base}/batch_events", self._guard(self._batch), methods=["POST"]),
            Route(f"{base}/channels", self._guard(self._channel_list), methods=["GET"]),
            Route(f"{base}/channels/{{channel}}", self._guard(self._channel), methods=["GET"]),
        ]

    def _guard(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            body = await request.body()
            params = dict(request.query_params)
            problem = request_problem(self._app, request.method, request.url.path, params, body)
            if problem is not None:
                return PlainTextResponse(problem, status_code=401)
            try:
                result = handler(request, json.loads(body) if body else {})
            except (BadRequest, ValueError) as err:
                return PlainTextResponse(str(err), status_code=getattr(err, "status", 400))
            return JSONResponse(result)

        return endpoint

    def _events(self, request: Request, body: Any) -> dict[str, Any]:
        del request
        if not isinstance(body, dict):
            raise BadRequest("the body must be a JSON object")
        name, data, socket_id = _event(body)
        for channel in _channels(body, MAX_CHANNELS):
            self._hub.publish(channel, name, data, exclude=socket_id)
        return {}

    def _batch(self, request: Request, body: Any) -> dict[str, Any]:
        del request
        batch = body.get("batch") if isinstance(body, dict) else None
        if not isinstance(batch, list) or len(batch) > MAX_BATCH:
            raise BadRequest(f"`batch` must list at most {MAX_BATCH} events")
        checked = [(_event(item), _channels(item, 1)[0]) for item in batch]
        for (name, data, socket_id), channel in checked:
            self._hub.publish(channel, name, data, exclude=socket_id)
        return {}

    def _channel_list(self, request: Request, body: Any) -> dict[str, Any]:
        del body
        prefix = request.query_params.get("filter_by_prefix", "")
        return {"channels": {name: {} for name in self._hub.channel_names(prefix)}}

    def _channel(self, request: Request, body: Any) -> dict[str, Any]:
        del body
        count = self._hub.subscriber_count(request.path_params["channel"])
        return {"occupied": count > 0, "subscription_count": count}
