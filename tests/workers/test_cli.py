"""`travis-logs` refuses a bad configuration with one line per setting and no password."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.helpers import free_port, with_database
from travis_logs.db import admin_dsn, database_name
from travis_logs.settings import Settings
from workers.cli import main


def test_bad_settings_are_named_without_their_passwords(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Malformed DSNs with passwords and a bad secret are reported; no password is printed."""
    monkeypatch.setenv("DATABASE_URL", "mysql://logs:hunter2@db:5432/travis_logs")
    monkeypatch.setenv("RABBITMQ_URL", "amqp://guest:p@ss@mq:notaport/")
    monkeypatch.setenv("PUSHER_PORT", "many")
    monkeypatch.setenv("JWT_LEEWAY_S", "-1")
    assert main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert "DATABASE_URL" in err and "RABBITMQ_URL" in err and "PUSHER_PORT" in err
    assert "'many'" in err  # values that are no credential are still shown
    for secret in ("hunter2", "p@ss", ":ss@"):
        assert secret not in err


async def _without_last_migration(dsn: str) -> str:
    """A migrated copy of the schema that lacks its newest migration (an older deploy's)."""
    from travis_logs.migrate import available, migrate

    await migrate(dsn)
    last = available()[-1].version
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DELETE FROM schema_migrations WHERE version = $1", last)
    finally:
        await conn.close()
    return last


@pytest.mark.services  # PostgreSQL, through a database of its own
@pytest.mark.parametrize("command", ["ingest", "worker", "api"])
def test_processes_refuse_a_database_that_lacks_migrations(
    command: str,
    defaults: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Started before `migrate` (a deploy in the wrong order), a process exits naming the
    missing migration instead of failing (and dead-lettering) every batch."""
    dsn = with_database(str(defaults.database_url), f"travis_logs_test_behind_{command}")
    try:
        last = asyncio.run(_without_last_migration(dsn))
        monkeypatch.setenv("DATABASE_URL", dsn)
        monkeypatch.setenv("TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")
        assert main([command]) == 2
        err = capsys.readouterr().err
        assert last in err and "travis-logs migrate" in err
    finally:
        asyncio.run(_drop(dsn))


async def _drop(dsn: str) -> None:
    conn = await asyncpg.connect(admin_dsn(dsn))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{database_name(dsn)}" WITH (FORCE)')
    finally:
        await conn.close()


async def _where_autovacuum_cannot_act(dsn: str, *, behind: bool) -> str:
    """A database log_parts will not be vacuumed in on its own; the reason the warning gives.

    The shared server runs with autovacuum = off; where it runs autovacuum, log_parts's
    own setting turns it off for this database.
    """
    from travis_logs.migrate import migrate

    if behind:
        await _without_last_migration(dsn)
    else:
        await migrate(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SHOW autovacuum") == "off":
            return "autovacuum = off"
        await conn.execute("ALTER TABLE log_parts SET (autovacuum_enabled = false)")
        return "autovacuum_enabled = false"
    finally:
        await conn.close()


@pytest.mark.services  # the shared PostgreSQL
@pytest.mark.parametrize("command", ["migrate", "ingest", "worker", "api"])
def test_commands_warn_once_at_start_when_autovacuum_is_off(
    command: str,
    defaults: Settings,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """log_parts churns: without autovacuum the database grows; each command says so once,
    and `migrate` still succeeds (processes here stop at the missing migration instead)."""
    dsn = with_database(str(defaults.database_url), f"travis_logs_test_vacuum_{command}")
    try:
        reason = asyncio.run(_where_autovacuum_cannot_act(dsn, behind=command != "migrate"))
        monkeypatch.setenv("DATABASE_URL", dsn)
        monkeypatch.setenv("TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")
        # migrate checks the database alone here: the namespace check has tests of its own.
        argv = [command, "--skip-temporal"] if command == "migrate" else [command]
        assert main(argv) == (0 if command == "migrate" else 2)
        warnings = [
            r.getMessage() for r in caplog.records if "will not vacuum log_parts" in r.getMessage()
        ]
        assert len(warnings) == 1
        assert reason in warnings[0] and "VACUUM log_parts" in warnings[0]
    finally:
        asyncio.run(_drop(dsn))
