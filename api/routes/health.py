"""GET /healthz: can this process reach PostgreSQL, RabbitMQ, Temporal and S3 right now?"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from api.deps import BrokerDep, PoolDep, S3Dep, SettingsDep, TemporalDep
from api.schemas import Health, ServiceCheck
from travis_logs.bounded import bounded

router = APIRouter(tags=["service"])

CHECK_TIMEOUT_S = 3.0


async def _timed(check: Awaitable[object]) -> ServiceCheck:
    started = time.perf_counter()
    try:
        await asyncio.wait_for(check, CHECK_TIMEOUT_S)
    except Exception as err:  # any failure is the answer, not an error of this route
        error = bounded(f"{type(err).__name__}: {err}", 300)
        return ServiceCheck(ok=False, ms=_ms_since(started), error=error)
    return ServiceCheck(ok=True, ms=_ms_since(started))


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


async def _temporal(client: TemporalDep) -> None:
    if not await client.service_client.check_health():
        raise RuntimeError("the frontend reports itself unhealthy")


@router.get(
    "/healthz",
    response_model=Health,
    responses={503: {"model": Health, "description": "a service is unreachable"}},
)
async def healthz(
    settings: SettingsDep, pool: PoolDep, broker: BrokerDep, temporal: TemporalDep, s3: S3Dep
) -> JSONResponse:
    """Each backing service, checked now and in parallel; 503 when any one fails."""
    names = ("postgresql", "rabbitmq", "temporal", "s3")
    results = await asyncio.gather(
        _timed(pool.fetchval("SELECT 1")),
        _timed(broker.check()),
        _timed(_temporal(temporal)),
        _timed(s3.head_bucket(Bucket=settings.s3_bucket)),
    )
    ok = all(r.ok for r in results)
    health = Health(status="ok" if ok else "failing", checks=dict(zip(names, results, strict=True)))
    return JSONResponse(health.model_dump(), status_code=200 if ok else 503)
