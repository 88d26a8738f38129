"""PostgreSQL access: DSN helpers and the pool every process builds in its entry point."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import asyncpg

from travis_logs.errors import ConfigError


def database_name(dsn: str) -> str:
    name = urlsplit(dsn).path.lstrip("/")
    if not name:
        raise ConfigError(f"DATABASE_URL names no database: {redact(dsn)}")
    return name


def admin_dsn(dsn: str) -> str:
    """The same server, connected to the `postgres` maintenance database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/postgres"))


def redact(url: str) -> str:
    """The URL without its password, fit for an error message."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


# timestamptz comes back as aware datetimes; UTC keeps logs and arithmetic unambiguous. Sent
# at connection start, so it is the session's default: the reset on every release of a
# pooled connection (RESET ALL) keeps it, where a SET would be undone.
_SESSION = {"timezone": "UTC"}


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's reset query (RESET ALL, UNLISTEN *, ...): a round trip per
    query made through the pool.

    Nothing here leaves session state behind (no SET, advisory lock or cursor outside a
    transaction; the ingest's one LISTEN is ended by its owner before release); asyncpg
    still rolls back a transaction left open.
    """
    del conn


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool for one process; callers close it (`async with` or `await pool.close()`)."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings=_SESSION,
        reset=_keep_session,
    )
    assert pool is not None  # create_pool returns None only when used without await
    return pool
