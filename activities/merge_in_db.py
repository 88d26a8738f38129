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
# The log's bytes before the marker are `head`; when they end inside a line, a line break
# goes before the marker and its indexed size ($10: its position in the index) is one more.
# `planned` holds when every piece has the size planned: a fresh part gone or changed since
# its size was read writes nothing (the caller raises, the activity is retried).
_MERGE = r"""
WITH pieces AS (
    SELECT s.ord, s.size,
           CASE s.kind WHEN 'h' THEN substring(c.b FROM s.start + 1 FOR s.size)
                       WHEN 'p' THEN convert_to(p.content, 'UTF8')
                       ELSE s.lit END AS piece
    FROM (SELECT coalesce(convert_to(content, 'UTF8'), '') AS b FROM logs
          WHERE id = $1 OFFSET 0) AS c
    CROSS JOIN unnest($2::text[], $3::integer[], $4::integer[], $5::integer[], $6::bytea[])
               WITH ORDINALITY AS s(kind, start, size, number, lit, ord)
    LEFT JOIN log_parts p ON s.kind = 'p' AND p.log_id = $1 AND p.number = s.number
), joined AS (
    SELECT string_agg(piece, '' ORDER BY ord) FILTER (WHERE $7::bigint IS NULL OR ord < $7)
               AS head,
           string_agg(piece, '' ORDER BY ord) FILTER (WHERE ord >= $7) AS rest,
           coalesce(bool_and(coalesce(octet_length(piece), -1) = size), true) AS planned
    FROM pieces
), merged AS (
    SELECT head, rest, planned,
           $7::bigint IS NOT NULL AND octet_length(head) > 0
           AND substring(head FROM octet_length(head)) <> '\x0a'::bytea AS opened
    FROM joined
)
UPDATE logs SET
       content = convert_from(coalesce(m.head, '')
                              || CASE WHEN m.opened THEN '\x0a'::bytea ELSE '' END
                              || coalesce(m.rest, ''), 'UTF8'),
       part_numbers = $8,
       part_sizes = CASE WHEN m.opened
                         THEN ($9::integer[])[:$10::integer - 1] || ($9[$10] + 1)
                              || ($9::integer[])[$10 + 1:]
                         ELSE $9 END,
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


# One piece as the statement's arrays take it: kind, start, size, number, literal.
_Row = tuple[str, int | None, int, int | None, bytes | None]


def _row(piece: Piece) -> _Row:
    if isinstance(piece, Held):
        return ("h", piece.start, piece.size, None, None)
    if isinstance(piece, Fresh):
        return ("p", None, piece.size, piece.number, None)
    return ("m", None, len(piece.body), None, piece.body)


async def execute(conn: asyncpg.Connection, log_id: int, plan: Plan) -> Written:
    """Under the row lock: write the planned merge as the log's content and part index."""
    columns = [list(column) for column in zip(*map(_row, plan.pieces), strict=True)]
    kinds, starts, sizes, numbers, literals = columns or [[], [], [], [], []]
    marker_ord = None if plan.marker_at is None else plan.marker_at + 1
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
        marker_ord,
        list(plan.index.numbers),
        list(plan.index.sizes),
        slot,
    )
    if row is None:
        raise ApplicationError("a part changed during aggregation", type="LogChanged")
    return Written(row["content_version"], row["size"], with_break(plan, row["opened"]))
