"""The services every process depends on, reached the way the processes reach them."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from pydantic import ValidationError

from travis_logs.settings import Settings


async def test_migrations_create_tables_with_unique_part_numbers(
    pool: asyncpg.Pool, job_id: int
) -> None:
    """A second part with the same (log_id, number) is refused by the database."""
    async with pool.acquire() as conn:
        log_id = await conn.fetchval("INSERT INTO logs (job_id) VALUES ($1) RETURNING id", job_id)
        await conn.execute(
            "INSERT INTO log_parts (log_id, number, content) VALUES ($1, 0, 'a')", log_id
        )
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(
                "INSERT INTO log_parts (log_id, number, content) VALUES ($1, 0, 'b')", log_id
            )


async def test_one_log_row_per_job(pool: asyncpg.Pool, job_id: int) -> None:
    """`UNIQUE (job_id)`: a second logs row for the same job is refused."""
    await pool.execute("INSERT INTO logs (job_id) VALUES ($1)", job_id)
    with pytest.raises(asyncpg.UniqueViolationError):
        await pool.execute("INSERT INTO logs (job_id) VALUES ($1)", job_id)


async def test_pooled_connections_stay_in_utc_after_release(database_url: str) -> None:
    """Timestamps come back in UTC on every use of a pooled connection, not just its first
    (a release resets the session: RESET ALL)."""
    from travis_logs.db import create_pool

    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        zones = [await pool.fetchval("SHOW timezone") for _ in range(3)]
    finally:
        await pool.close()
    assert zones == ["UTC"] * 3


async def test_migrate_is_idempotent(database_url: str) -> None:
    """Running migrate again applies nothing and records each version once."""
    from travis_logs.migrate import available, migrate

    assert await migrate(database_url) == []
    conn = await asyncpg.connect(database_url)
    try:
        versions = [
            r["version"]
            for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")
        ]
    finally:
        await conn.close()
    assert versions == [m.version for m in available()]


@pytest.mark.services  # PostgreSQL, through a database of its own
async def test_concurrent_migrations_apply_each_file_once(defaults: Settings) -> None:
    """Two migrators on a new database: both finish, every file is applied once."""
    from tests.helpers import with_database
    from travis_logs.db import admin_dsn
    from travis_logs.migrate import available, migrate

    dsn = with_database(str(defaults.database_url), "travis_logs_test_concurrent_migrate")
    admin = await asyncpg.connect(admin_dsn(dsn))
    try:
        await admin.execute(
            'DROP DATABASE IF EXISTS "travis_logs_test_concurrent_migrate" WITH (FORCE)'
        )
        first, second = await asyncio.gather(migrate(dsn), migrate(dsn))
        assert sorted(first + second) == [m.version for m in available()]
    finally:
        await admin.execute(
            'DROP DATABASE IF EXISTS "travis_logs_test_concurrent_migrate" WITH (FORCE)'
        )
        await admin.close()


def test_settings_defaults_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """DESIGN §4 defaults hold; the environment overrides them by variable name."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    s = Settings(_env_file=None)
    assert str(s.database_url) == "postgresql://postgres@127.0.0.1:5432/travis_logs"
    assert str(s.rabbitmq_url) == "amqp://guest:guest@127.0.0.1:5672/"
    assert (s.temporal_address, s.temporal_namespace, s.temporal_task_queue) == (
        "127.0.0.1:7233",
        "default",
        "travis-logs",
    )
    assert (s.s3_endpoint_url, s.s3_bucket, s.aws_region) == (None, "travis-logs", "us-east-1")
    assert (s.pusher_private_channels, s.pusher_existence_check) == (False, False)
    assert s.auth_token is None and s.port == 5555
    assert (s.logs_quiet_period_s, s.logs_force_after_s, s.logs_purge_delay_s) == (10, 10800, 0)

    monkeypatch.setenv("PORT", "6000")
    monkeypatch.setenv("LOGS_QUIET_PERIOD_S", "2.5")
    monkeypatch.setenv("PUSHER_EXISTENCE_CHECK", "true")
    s = Settings(_env_file=None)
    assert (s.port, s.logs_quiet_period_s, s.pusher_existence_check) == (6000, 2.5, True)


def test_pusher_app_id_must_be_digits() -> None:
    """A non-numeric PUSHER_APP_ID is refused with a sentence that says what is wrong."""
    with pytest.raises(ValidationError, match="digits only"):
        Settings(_env_file=None, pusher_app_id="app-1")
    assert Settings(_env_file=None, pusher_app_id="123").pusher_app_id == "123"
