"""The archived log's index, `jobs/<id>/log.index.json`, written by the round that archives it.

Built in a thread (a large log takes a while to scan, and the activity's event loop sends
heartbeats). Arrival times come from the stored parts, which purge deletes only after the
archive is verified, so an archive round still finds them.
"""

from __future__ import annotations

import asyncio
import json

import asyncpg

from travis_logs.archive_store import ArchiveStore
from travis_logs.log_index import LogIndex, build_index
from travis_logs.transfer import Progress

_PART_INDEX = "SELECT part_numbers, part_sizes FROM logs WHERE id = $1"
_STORED = (
    "SELECT number, octet_length(content) AS size, created_at FROM log_parts WHERE log_id = $1"
)


async def index_of(conn: asyncpg.Pool | asyncpg.Connection, log_id: int, body: bytes) -> LogIndex:
    """The index of the log `log_id` whose text is `body`: its part index, and the stored
    parts it does not hold yet (a live log's, or late ones) as a read merges them."""
    row = await conn.fetchrow(_PART_INDEX, log_id)
    held = dict(zip(row["part_numbers"], row["part_sizes"], strict=True)) if row else {}
    stored = await conn.fetch(_STORED, log_id)
    sizes = held | {r["number"]: r["size"] for r in stored if r["number"] not in held}
    arrived = {r["number"]: int(r["created_at"].timestamp() * 1000) for r in stored}
    numbers = sorted(sizes)
    return await asyncio.to_thread(
        build_index,
        body,
        numbers,
        [sizes[n] for n in numbers],
        [arrived.get(n) for n in numbers],
    )


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
