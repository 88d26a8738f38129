"""GET /metrics: this process's Prometheus metrics (requests, Pusher, intake)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
def metrics() -> Response:
    """Prometheus text exposition of the default registry."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
