"""Reachability checks that turn a dead service into one line naming its setting."""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

import asyncpg
from stamina import retry_context

from travis_logs.db import redact
from travis_logs.errors import ConfigError

POSTGRES_HINT = (
    "start it with: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
)
RABBITMQ_HINT = "start it with: rabbitmq-server -detached"


def host_port(url: str, default_port: int, setting: str) -> tuple[str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port or default_port
    except ValueError as err:
        raise ConfigError(f"{setting}: malformed URL {redact(url)!r} ({err})") from err
    if not parts.hostname:
        raise ConfigError(f"{setting}: no host in {redact(url)!r}")
    return parts.hostname, port


async def check_tcp(host: str, port: int, setting: str, hint: str, timeout: float = 3) -> None:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as err:
        raise ConfigError(f"{setting}: nothing answers on {host}:{port} ({err}); {hint}") from err
    writer.close()
    await writer.wait_closed()


async def check_postgres(dsn: str) -> None:
    host, port = host_port(dsn, 5432, "DATABASE_URL")
    await check_tcp(host, port, "DATABASE_URL", POSTGRES_HINT)
    try:
        conn = await asyncpg.connect(dsn, timeout=5)
    except asyncpg.InvalidCatalogNameError:
        return  # the server answers; `migrate` creates the database
    except (OSError, asyncpg.PostgresError) as err:
        raise ConfigError(f"DATABASE_URL: {redact(dsn)} refused the connection: {err}") from err
    await conn.close()


async def check_rabbitmq(url: str) -> None:
    host, port = host_port(url, 5672, "RABBITMQ_URL")
    await check_tcp(host, port, "RABBITMQ_URL", RABBITMQ_HINT)


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


async def wait_for_port(host: str, port: int, what: str, timeout: float = 30) -> None:
    """Poll until something listens on host:port; ConfigError naming `what` after `timeout`."""
    try:
        async for attempt in retry_context(
            on=OSError,
            attempts=None,
            timeout=timeout,
            wait_initial=0.1,
            wait_max=1.0,
            wait_jitter=0.1,
        ):
            with attempt:
                _, writer = await asyncio.open_connection(host, port)
    except OSError:
        raise ConfigError(
            f"{what}: nothing listens on {host}:{port} after {timeout:.0f} s"
        ) from None
    writer.close()
    await writer.wait_closed()
