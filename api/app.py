"""`create_app(settings)`: the travis-logs HTTP API, its viewer page and its metrics."""

from __future__ import annotations

from fastapi import FastAPI

from api import access_log, errors, openapi
from api.limits import BodyLimit
from api.metrics import RequestMetrics
from api.routes import (
    health,
    log_parts,
    log_text,
    logs,
    metrics,
    pusher,
    redactions,
    uptime,
    viewer,
)
from api.routes.uptime import package_version
from api.state import lifespan
from travis_logs.settings import Settings


def create_app(settings: Settings) -> FastAPI:
    """The API wired to `settings`; its lifespan opens the clients it needs."""
    app = FastAPI(
        title="travis-logs",
        version=package_version(),
        summary="Travis CI job logs: read, replace and stream them.",
        lifespan=lifespan(settings),
        docs_url=None,  # served by api.openapi from local files
        redoc_url=None,
        generate_unique_id_function=openapi.operation_id,
        responses=errors.UNAVAILABLE,
        # travis-api and travis-worker do not always label their JSON bodies.
        strict_content_type=False,
    )
    access_log.install()  # before uvicorn logs the first request of this app
    errors.install(app)
    for module in (uptime, health, metrics, log_text, logs, redactions, log_parts, pusher, viewer):
        app.include_router(module.router)
    viewer.mount_assets(app)
    openapi.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(RequestMetrics)
    return app
