"""A warning at start when PostgreSQL will not vacuum log_parts on its own.

Every part is inserted, then deleted once its log is archived: log_parts churns, and
without autovacuum its dead rows (and the database) grow until someone runs VACUUM.
The migrations set log_parts to be vacuumed eagerly; with autovacuum off they cannot act.
Nothing is refused: a database that an operator vacuums by hand works.
"""

from __future__ import annotations

import logging

import asyncpg

log = logging.getLogger(__name__)

_STATE = """
SELECT current_setting('autovacuum') = 'on' AS server,
       current_setting('track_counts') = 'on' AS counts,
       COALESCE((SELECT NOT ('autovacuum_enabled=false' = ANY (reloptions)
                             OR 'autovacuum_enabled=off' = ANY (reloptions))
                 FROM pg_class WHERE oid = to_regclass('public.log_parts')), true) AS table_on
"""


async def autovacuum_off(conn: asyncpg.Connection) -> str | None:
    """What keeps autovacuum from log_parts, or None when it runs."""
    row = await conn.fetchrow(_STATE)
    assert row is not None
    if not row["server"]:
        return "the server runs with autovacuum = off"
    if not row["counts"]:
        return "the server runs with track_counts = off (autovacuum needs it)"
    if not row["table_on"]:
        return "log_parts has autovacuum_enabled = false"
    return None


async def warn_if_autovacuum_off(conn: asyncpg.Connection) -> bool:
    """Log one warning when autovacuum cannot clean log_parts; True when it did."""
    reason = await autovacuum_off(conn)
    if reason is None:
        return False
    log.warning(
        "PostgreSQL will not vacuum log_parts: %s. log_parts churns (each part is deleted once"
        " its log is archived), so its dead rows and the database grow until VACUUM runs;"
        " turn autovacuum on (ALTER SYSTEM SET autovacuum = on; SELECT pg_reload_conf())"
        " or run `VACUUM log_parts` every few minutes",
        reason,
    )
    return True
