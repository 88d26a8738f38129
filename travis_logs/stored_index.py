"""The index of a stored log (travis_logs.log_index) from what the database holds: the part
index of its content and the stored parts it does not hold yet, with their arrival times.

A read (api.log_text) indexes the log as it serves it, pending parts included; the archive
round (activities.indexing) indexes one content version, whose parts are its part index
(`archived_parts`). Built in a thread: a large log takes a while to scan.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from travis_logs.log_index import LogIndex, build_index
from travis_logs.log_limit import CUT_COLUMNS, Cut, cut_of

_PART_INDEX = f"""
SELECT part_numbers, part_sizes, coalesce(octet_length(content), archive_size) AS text_bytes,
       {CUT_COLUMNS}
FROM logs WHERE id = $1
"""
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
    cut = cut_of(row) if row else None
    if cut is not None:
        sizes = _with_marker(sizes, cut, len(body), (row["text_bytes"] or 0) - sum(held.values()))
    arrived = {r["number"]: _ms(r["created_at"]) for r in stored}
    numbers = sorted(sizes)
    return await asyncio.to_thread(
        build_index,
        body,
        numbers,
        [sizes[n] for n in numbers],
        [arrived.get(n) for n in numbers],
    )


def _with_marker(sizes: dict[int, int], cut: Cut, size: int, prefix: int) -> dict[int, int]:
    """The sizes of a cut log's parts as `log_limit.finish` lays them out: the middle gone,
    the marker (as long as the rest of the text leaves) indexed at `elided_from`."""
    kept = {n: s for n, s in sizes.items() if not cut.elided(n)}
    kept[cut.elided_from] = max(0, size - max(0, prefix) - sum(kept.values()))
    return kept


# The arrival time of each part in a `logs` row's part index (NULL once purged), in its
# order, for a query over `logs l`.
ARRIVALS = """ARRAY(SELECT p.created_at
             FROM unnest(l.part_numbers) WITH ORDINALITY AS n(number, i)
             LEFT JOIN log_parts p ON p.log_id = l.id AND p.number = n.number
             ORDER BY n.i) AS arrivals"""
_HELD = f"""
SELECT l.part_numbers, l.part_sizes, {ARRIVALS}
FROM logs l WHERE l.id = $1 AND l.content_version = $2
"""


@dataclass(frozen=True)
class HeldParts:
    """The parts one content version holds, with their arrival times (None once purged)."""

    numbers: list[int]
    sizes: list[int]
    arrivals: list[int | None]

    @classmethod
    def of(cls, row: asyncpg.Record) -> HeldParts:
        """From a row with `part_numbers`, `part_sizes` and `arrivals` (ARRIVALS)."""
        arrivals = [None if at is None else _ms(at) for at in row["arrivals"]]
        return cls(list(row["part_numbers"]), list(row["part_sizes"]), arrivals)


async def archived_parts(
    conn: asyncpg.Pool | asyncpg.Connection, log_id: int, content_version: int
) -> HeldParts | None:
    """The part index of content version `content_version`; None when the log has another."""
    row = await conn.fetchrow(_HELD, log_id, content_version)
    return None if row is None else HeldParts.of(row)


def _ms(at: datetime) -> int:
    """Unix milliseconds, as both indexes count them."""
    return int(at.timestamp() * 1000)
