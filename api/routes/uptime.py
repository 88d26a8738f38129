"""GET /uptime: the liveness answer travis-logs always gave."""

from __future__ import annotations

import time
from importlib.metadata import PackageNotFoundError, version

from fastapi import APIRouter

from api import queries
from api.deps import PoolDep, StartedAtDep
from api.schemas import Uptime

router = APIRouter(tags=["service"])


def package_version() -> str:
    try:
        return version("travis-logs")
    except PackageNotFoundError:  # running from a tree that was never installed
        return "unknown"


@router.get("/uptime")
async def get_uptime(pool: PoolDep, started_at: StartedAtDep) -> Uptime:
    """Seconds since start, the database's clock, and the version."""
    now = await queries.db_now(pool)
    return Uptime(
        uptime=time.time() - started_at,
        greeting="hello, human 👋!",
        # The original pinged Redis here; this service's store is PostgreSQL, which answered.
        pong="PONG",
        now=now,
        version=package_version(),
    )
