"""Apply the numbered SQL files of `travis_logs/migrations` once each, in order.

A database that travis-logs (Ruby) created is adopted rather than recreated: where
`migrations/adopt/<version>.sql` exists and the tables it would create are there already, that
file is applied in place of `<version>.sql` (it brings the existing tables to the same shape).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib import resources

import asyncpg

from travis_logs.autovacuum import warn_if_autovacuum_off
from travis_logs.db import admin_dsn, database_name, redact
from travis_logs.errors import ConfigError

log = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every process that migrates this database.
_LOCK_KEY = 0x7472_6C67  # "trlg"

_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


# Sequel, the 2016 travis-logs' migrator, kept its own `schema_migrations (filename)`.
_SET_ASIDE_SEQUEL = """
DO $$ BEGIN
    IF to_regclass('public.schema_migrations') IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM information_schema.columns
        WHERE table_schema = 'public' AND table_name = 'schema_migrations'
          AND column_name = 'version'
    ) THEN
        ALTER TABLE schema_migrations RENAME TO schema_migrations_sequel;
    END IF;
END $$
"""
_HAS_LOGS = "SELECT to_regclass('public.logs') IS NOT NULL"


@dataclass(frozen=True)
class Migration:
    version: str
    sql: str
    # Applied instead of `sql` to a database whose tables travis-logs created.
    adopt: str | None = None


def available() -> list[Migration]:
    """The packaged migration files, sorted by their number."""
    files = resources.files("travis_logs.migrations")
    adopt = files / "adopt"
    found = []
    for f in files.iterdir():
        if not f.name.endswith(".sql"):
            continue
        alt = adopt / f.name
        found.append(
            Migration(
                version=f.name.removesuffix(".sql"),
                sql=f.read_text(encoding="utf-8"),
                adopt=alt.read_text(encoding="utf-8") if alt.is_file() else None,
            )
        )
    return sorted(found, key=lambda m: m.version)


async def ensure_database(dsn: str) -> bool:
    """Create the database named in `dsn` when it does not exist; True when created."""
    name = database_name(dsn)
    conn = await asyncpg.connect(admin_dsn(dsn))
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if exists:
            return False
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            return False  # another process created it meanwhile
        except asyncpg.InsufficientPrivilegeError:
            raise ConfigError(
                f"DATABASE_URL: database {name} does not exist and its user may not create it;"
                " create it as a superuser (deploy/postgres/roles.sql does, owned by the user"
                " that migrates)"
            ) from None
        return True
    finally:
        await conn.close()


async def migrate(dsn: str) -> list[str]:
    """Apply pending migrations under an advisory lock; returns the versions applied."""
    if await ensure_database(dsn):
        log.info("created database %s", database_name(dsn))
    conn = await asyncpg.connect(dsn)
    try:
        # A session lock: two processes migrating at once apply each file once, in order.
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            applied = await _apply_pending(conn)
        except asyncpg.InsufficientPrivilegeError as err:
            raise ConfigError(
                f"DATABASE_URL: its user may not change the schema ({err}); run `travis-logs"
                " migrate` as the database's owner, the processes as a user with row access"
            ) from None
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
        await warn_if_autovacuum_off(conn)
        return applied
    finally:
        await conn.close()


async def require_current(dsn: str) -> None:
    """Refuse to start on a database that misses migrations this code needs.

    Without it a process started before `migrate` (a deploy in the wrong order) fails on
    every batch that touches a missing table or column, and says so only in its log.
    """
    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except asyncpg.InvalidCatalogNameError:
        missing = [m.version for m in available()]
    else:
        try:
            await warn_if_autovacuum_off(conn)
            missing = await _missing(conn)
        finally:
            await conn.close()
    if missing:
        raise ConfigError(
            f"DATABASE_URL: {redact(dsn)} lacks migrations {', '.join(missing)};"
            " run `travis-logs migrate` first"
        )


async def _missing(conn: asyncpg.Connection) -> list[str]:
    if await conn.fetchval("SELECT to_regclass('public.schema_migrations')") is None:
        return [m.version for m in available()]
    done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    return [m.version for m in available() if m.version not in done]


async def _apply_pending(conn: asyncpg.Connection) -> list[str]:
    await conn.execute(_SET_ASIDE_SEQUEL)
    await conn.execute(_TABLE)
    done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    applied = []
    for m in available():
        if m.version in done:
            continue
        async with conn.transaction():
            adopting = m.adopt is not None and await conn.fetchval(_HAS_LOGS)
            await conn.execute(m.adopt if adopting and m.adopt else m.sql)
            await conn.execute("INSERT INTO schema_migrations (version) VALUES ($1)", m.version)
        log.info("%s migration %s", "adopted the tables with" if adopting else "applied", m.version)
        applied.append(m.version)
    return applied
