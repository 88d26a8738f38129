"""The lifecycle activities: thin, idempotent adapters over PostgreSQL and the S3 archive."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg

from travis_logs.activities.aggregate import AggregateActivities
from travis_logs.activities.archive import ArchiveActivities
from travis_logs.activities.purge import PurgeActivities
from travis_logs.activities.replace import ReplaceActivities
from travis_logs.core.archive_store import ArchiveStore


def lifecycle_activities(pool: asyncpg.Pool, store: ArchiveStore) -> list[Callable[..., Any]]:
    """Every activity LogWorkflow calls, bound to the clients the entry point built."""
    aggregate = AggregateActivities(pool, store)
    archive = ArchiveActivities(pool, store)
    replace = ReplaceActivities(pool, store)
    purge = PurgeActivities(pool)
    return [
        aggregate.inspect_log,
        aggregate.aggregate_log,
        archive.archive_log,
        archive.verify_archive,
        purge.purge_log,
        replace.replace_content,
        replace.remove_archive,
    ]
