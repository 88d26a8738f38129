"""The autovacuum check on a private cluster with PostgreSQL's defaults (autovacuum on)."""

from __future__ import annotations

import asyncpg
import pytest

from tests.private_postgres import private_postgres
from travis_logs.autovacuum import autovacuum_off, warn_if_autovacuum_off
from travis_logs.migrate import migrate


@pytest.mark.services  # a private PostgreSQL cluster
async def test_silent_with_autovacuum_and_named_when_log_parts_opts_out() -> None:
    with private_postgres() as cluster:
        await migrate(cluster.dsn)
        conn = await asyncpg.connect(cluster.dsn)
        try:
            assert await autovacuum_off(conn) is None
            assert not await warn_if_autovacuum_off(conn)
            await conn.execute("ALTER TABLE log_parts SET (autovacuum_enabled = false)")
            assert await autovacuum_off(conn) == "log_parts has autovacuum_enabled = false"
            assert await warn_if_autovacuum_off(conn)
        finally:
            await conn.close()
