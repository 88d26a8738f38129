"""Keeping a log's stored parts within the size limit while the job streams.

The statement that stores a batch counts each log's bytes (`logs.received_bytes`) and says
which logs are past LOGS_MAX_BYTES or cut already; only those come here, in the same
transaction (their rows are locked by that count), so a log under the limit costs nothing
more. `travis_logs.log_limit` decides; this applies it: the parts left out are deleted and
counted on the row, so the database holds at most the limit plus the batch in hand, and
no more than the limit once the batch commits. The parts were pushed live all the same.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from travis_logs.log_limit import (
    CUT_COLUMNS,
    Cut,
    Decision,
    Limits,
    Sized,
    cut_of,
    first_cut,
    place,
    trim,
)

_CUT = f"SELECT {CUT_COLUMNS} FROM logs WHERE id = $1"
_SIZES = """
SELECT number, octet_length(content) AS size FROM log_parts WHERE log_id = $1 ORDER BY number
"""
_OLDEST = """
SELECT number, octet_length(content) AS size FROM log_parts
WHERE log_id = $1 AND number >= $2 ORDER BY number LIMIT $3
"""
_RECOUNT = "UPDATE logs SET received_bytes = $2 WHERE id = $1"
_DROP = "DELETE FROM log_parts WHERE log_id = $1 AND number = ANY($2::integer[])"
_RECORD = """
UPDATE logs SET elided_from = $2, tail_from = $3, head_bytes = $4, tail_bytes = $5,
       elided_bytes = $6, elided_parts = $7
WHERE id = $1
"""


async def enforce(
    conn: asyncpg.Connection, log_id: int, new: Sequence[Sized], limits: Limits
) -> Cut | None:
    """Cut the log, or keep it cut, after this batch stored `new` (number, size) for it."""
    before = cut_of(await conn.fetchrow(_CUT, log_id))
    decision: Decision | None
    if before is None:
        sizes = await _sized(conn, _SIZES, log_id)
        decision = first_cut(sizes, limits)
        if decision is None:
            # Past the limit only with bytes purged already (an archived log that goes on):
            # count from what is stored, so the next batches need no scan of it.
            await conn.execute(_RECOUNT, log_id, sum(size for _, size in sizes))
            return None
    else:
        decision = place(before, new, limits)
    cut = await _dropped(conn, log_id, decision)
    take = len(new) + 8
    while cut.tail_bytes > limits.tail_bytes:
        oldest = await _sized(conn, _OLDEST, log_id, cut.tail_from, take)
        if not oldest:  # the tail's parts were purged meanwhile: none stored to count
            cut = Cut(cut.elided_from, cut.tail_from, cut.head_bytes, 0, *_counts(cut))
            break
        cut = await _dropped(conn, log_id, trim(cut, oldest, limits))
        take *= 2
    await conn.execute(
        _RECORD,
        log_id,
        cut.elided_from,
        cut.tail_from,
        cut.head_bytes,
        cut.tail_bytes,
        *_counts(cut),
    )
    return cut


def _counts(cut: Cut) -> tuple[int, int]:
    return cut.elided_bytes, cut.elided_parts


async def _dropped(conn: asyncpg.Connection, log_id: int, decision: Decision) -> Cut:
    if decision.dropped:
        await conn.execute(_DROP, log_id, list(decision.dropped))
    return decision.cut


async def _sized(conn: asyncpg.Connection, sql: str, *args: object) -> list[Sized]:
    return [(r["number"], r["size"] or 0) for r in await conn.fetch(sql, *args)]
