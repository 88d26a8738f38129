"""A planned merge (travis_logs.merge_plan) executed by PostgreSQL: one UPDATE of the row.

The worker plans from sizes and numbers; the statement concatenates the pieces (byte ranges
of the content, stored parts by number, the marker) and writes content and part index, so
no log text enters the worker (a 64 MiB log held several copies of itself there).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from temporalio.exceptions import ApplicationError

from travis_logs.merge import PartIndex
from travis_logs.merge_plan import Fresh, Held, Piece, Plan, with_break

# Byte offsets into the content's UTF-8 encoding, not `substring(content ...)` on the text:
# a character offset is found by scanning from the start (the square of a log's size over
# its pieces). The subquery converts (and detoasts) the content once per statement: OFFSET 0
# keeps the planner from flattening it into the join, which would convert it again for every
# piece. Pieces are bytea, so a range may end anywhere; every piece ends at a part boundary
# (parts are whole UTF-8), and convert_from checks the result once, whole.
#
# A range of the content is passed in chunks of at most _CHUNK_BYTES: the aggregate's sort
# (ORDER BY) then holds at most work_mem of them and spills the rest to disk, where one row
# of 64 MiB would be another copy of the log in the backend's memory.
#
# The marker (kind 'm') takes a line break first when the piece before it (the plan leaves
# out empty pieces, so the log's bytes before the marker end with it) does not end in one;
# its indexed size ($9: its position in the index) is then one more. `planned` holds when
# every fresh part has the size planned: a part gone or changed since its size was read
# writes nothing (the caller raises, the activity is retried). The held ranges need no such
# check: the content does not change under the row lock.
_MERGE = r"""
WITH pieces AS (
    SELECT s.ord, s.kind, s.size,
           CASE s.kind
               WHEN 'h' THEN substring(c.b FROM s.start + 1 FOR s.size)
               WHEN 'p' THEN convert_to(p.content, 'UTF8')
               ELSE CASE WHEN s.ord > 1 AND CASE ($2::text[])[s.ord - 1]
                   WHEN 'h' THEN substring(
                       c.b FROM ($3::integer[])[s.ord - 1] + ($4::integer[])[s.ord - 1] FOR 1)
                   ELSE (SELECT substring(convert_to(q.content, 'UTF8')
                                          FROM octet_length(q.content) FOR 1)
                         FROM log_parts q
                         WHERE q.log_id = $1 AND q.number = ($5::integer[])[s.ord - 1])
                   END <> '\x0a'::bytea THEN '\x0a'::bytea || s.lit ELSE s.lit END
           END AS piece
    FROM (SELECT coalesce(convert_to(content, 'UTF8'), '') AS b FROM logs
          WHERE id = $1 OFFSET 0) AS c
    CROSS JOIN unnest($2::text[], $3::integer[], $4::integer[], $5::integer[], $6::bytea[])
               WITH ORDINALITY AS s(kind, start, size, number, lit, ord)
    LEFT JOIN log_parts p ON s.kind = 'p' AND p.log_id = $1 AND p.number = s.number
), merged AS (
    SELECT string_agg(piece, '' ORDER BY ord) AS body,
           coalesce(bool_and(kind <> 'p' OR coalesce(octet_length(piece), -1) = size), true)
               AS planned,
           coalesce(bool_or(kind = 'm' AND octet_length(piece) > size), false) AS opened
    FROM pieces
)
UPDATE logs SET
       content = convert_from(coalesce(m.body, ''), 'UTF8'),
       part_numbers = $7,
       part_sizes = CASE WHEN m.opened
                         THEN ($8::integer[])[:$9::integer - 1] || ($8[$9] + 1)
                              || ($8::integer[])[$9 + 1:]
                         ELSE $8 END,
       content_version = content_version + 1, aggregated_at = now(), updated_at = now(),
       archived_at = NULL, archive_verified = NULL, verified_at = NULL, purged_at = NULL
FROM merged m
WHERE logs.id = $1 AND m.planned
RETURNING logs.content_version, octet_length(logs.content) AS size, m.opened
"""


@dataclass(frozen=True)
class Written:
    """What the statement wrote: the new content version, byte size and part index."""

    content_version: int
    size: int
    index: PartIndex


_CHUNK_BYTES = 1 << 20
# One piece as the statement's arrays take it: kind, start, size, number, literal.
_Row = tuple[str, int | None, int, int | None, bytes | None]


def _rows(piece: Piece) -> list[_Row]:
    if isinstance(piece, Held):
        end = piece.start + piece.size
        starts = range(piece.start, end, _CHUNK_BYTES)
        return [("h", at, min(_CHUNK_BYTES, end - at), None, None) for at in starts]
    if isinstance(piece, Fresh):
        return [("p", None, piece.size, piece.number, None)]
    return [("m", None, len(piece.body), None, piece.body)]


async def execute(conn: asyncpg.Connection, log_id: int, plan: Plan) -> Written:
    """Under the row lock: write the planned merge as the log's content and part index."""
    rows = [row for piece in plan.pieces for row in _rows(piece)]
    columns = [list(column) for column in zip(*rows, strict=True)]
    kinds, starts, sizes, numbers, literals = columns or [[], [], [], [], []]
    slot = None
    if plan.marker_number is not None:
        slot = plan.index.numbers.index(plan.marker_number) + 1
    row = await conn.fetchrow(
        _MERGE,
        log_id,
        kinds,
        starts,
        sizes,
        numbers,
        literals,
        list(plan.index.numbers),
        list(plan.index.sizes),
        slot,
    )
    if row is None:
        raise ApplicationError("a part changed during aggregation", type="LogChanged")
    return Written(row["content_version"], row["size"], with_break(plan, row["opened"]))
