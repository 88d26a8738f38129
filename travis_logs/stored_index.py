"""The index of a stored log (travis_logs.log_index) from what the database holds: the part
index of its content and the stored parts it does not hold yet, with their arrival times.

Both the archive round (activities.indexing) and a read (api.log_text) build it this one
way. Built in a thread: a large log takes a while to scan.
"""

from __future__ import annotations

import asyncio

import asyncpg

from travis_logs.log_index import LogIndex, build_index

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
