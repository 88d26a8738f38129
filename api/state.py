"""The API's composition root: clients built once at startup and shared by every request."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, TypedDict

import asyncpg
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from fastapi import FastAPI
from temporalio.client import Client

from api.auth import load_jwt_key
from api.probes import BrokerProbe
from ingest.intake import PartIntake, assemble
from travis_logs.archive_store import ArchiveStore
from travis_logs.db import create_pool
from travis_logs.pusher.occupancy import OccupancyCache, OccupancyStore
from travis_logs.pusher.publisher import build_publisher
from travis_logs.s3 import s3_client
from travis_logs.settings import Settings
from travis_logs.temporal import connect


class State(TypedDict):
    """What the lifespan yields; Starlette hands a copy to each request as `request.state`."""

    settings: Settings
    pool: asyncpg.Pool
    temporal: Client
    s3: Any  # an aiobotocore S3 client
    archive: ArchiveStore
    intake: PartIntake
    occupancy: OccupancyStore
    jwt_key: RSAPublicKey | None
    broker: BrokerProbe
    started_at: float


Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[State]]


def lifespan(settings: Settings) -> Lifespan:
    """The app's lifespan: open every client, yield them, close them in reverse order."""

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[State]:
        async with AsyncExitStack() as stack:
            yield await _build(settings, stack)

    return run


async def _build(settings: Settings, stack: AsyncExitStack) -> State:
    jwt_key = load_jwt_key(settings)  # a bad key stops startup, not the first request
    pool = await create_pool(str(settings.database_url))
    stack.push_async_callback(pool.close)
    temporal = await connect(settings)
    s3 = await stack.enter_async_context(s3_client(settings))
    occupancy = OccupancyStore(pool)
    publisher = build_publisher(
        settings, OccupancyCache(occupancy, settings.pusher_occupancy_ttl_s)
    )
    stack.push_async_callback(publisher.aclose)
    broker = BrokerProbe(str(settings.rabbitmq_url), settings.health_broker_retry_s)
    stack.push_async_callback(broker.aclose)
    return State(
        settings=settings,
        pool=pool,
        temporal=temporal,
        s3=s3,
        archive=ArchiveStore.for_settings(s3, settings),
        intake=assemble(pool, temporal, settings, publisher).parts,
        occupancy=occupancy,
        jwt_key=jwt_key,
        broker=broker,
        started_at=time.time(),
    )
