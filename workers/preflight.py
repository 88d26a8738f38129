"""Checks the operator commands run first, so a missing service is one line, not a traceback."""

from __future__ import annotations

import asyncpg
from temporalio.client import Client

from travis_logs import search_attributes
from travis_logs.checks import check_postgres, check_tcp
from travis_logs.db import database_name, redact
from travis_logs.errors import ConfigError
from travis_logs.settings import Settings
from travis_logs.temporal import target
from workflows.models import SEARCH_ATTRIBUTES


async def check_database(settings: Settings) -> None:
    """PostgreSQL answers and the database exists (commands that read it do not create it)."""
    dsn = str(settings.database_url)
    await check_postgres(dsn)
    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except asyncpg.InvalidCatalogNameError as err:
        raise ConfigError(
            f"DATABASE_URL: {redact(dsn)} has no database {database_name(dsn)!r}; "
            "run `travis-logs migrate`"
        ) from err
    await conn.close()


async def check_temporal(settings: Settings) -> None:
    host, port = target(settings)
    await check_tcp(host, port, "TEMPORAL_ADDRESS", "start it with `travis-logs dev`")


async def check_namespace(client: Client, *, register: bool = False) -> list[str]:
    """Every search attribute the workflows set exists in the namespace (added if `register`)."""
    return await search_attributes.ensure(client, SEARCH_ATTRIBUTES, register=register)


async def preflight(settings: Settings, *, database: bool = True) -> None:
    if database:
        await check_database(settings)
    await check_temporal(settings)
