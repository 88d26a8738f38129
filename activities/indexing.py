"""The archived log's index, `jobs/<id>/log.index.json`, written by the round that archives it.

Built in a thread (a large log takes a while to scan, and the activity's event loop sends
heartbeats). Arrival times come from the stored parts, which purge deletes only after the
archive is verified, so an archive round still finds them.
"""

from __future__ import annotations

import json

import asyncpg

from travis_logs.archive_store import ArchiveStore
from travis_logs.stored_index import index_of
from travis_logs.transfer import Progress


async def write_index(
    pool: asyncpg.Pool,
    store: ArchiveStore,
    log_id: int,
    job_id: int,
    body: bytes,
    *,
    version: int,
    progress: Progress | None = None,
) -> None:
    """Write the log's index beside its archive."""
    index = await index_of(pool, log_id, body)
    encoded = json.dumps(index.to_json(), separators=(",", ":")).encode()
    await store.put_index(job_id, encoded, version=version, progress=progress)
