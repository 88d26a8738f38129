"""Prometheus metrics of the API: one histogram of requests by route template and status."""

from __future__ import annotations

import time

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUESTS = Histogram(
    "travis_logs_api_request_seconds",
    "HTTP requests by method, route template and status.",
    ["method", "route", "status"],
)
DROPPED_PARTS = Counter(
    "travis_logs_api_dropped_log_parts",
    "Items of POST /log-parts/multi that were dropped, by reason.",
    ["reason"],
)

# Every method a route of the app answers (HEAD: Starlette answers it for each GET route).
SERVED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "OPTIONS"})


class RequestMetrics:
    """Times every HTTP request; the label is the route template, never the raw path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app raises before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            REQUESTS.labels(_method(scope), _route(scope), str(status)).observe(
                time.perf_counter() - started
            )


def _method(scope: Scope) -> str:
    method = scope["method"]
    # A client may send any token as its method; only the methods served are labels.
    return method if method in SERVED_METHODS else "other"


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    # Unmatched paths are not labels of their own: a scanner would explode the series.
    return path if isinstance(path, str) else "unmatched"
