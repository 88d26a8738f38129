"""The merge of `merge_unheld` (and `finish` for a cut log) planned from sizes and numbers.

The plan lists the pieces of the merged log in order: byte ranges of the content the log
holds, stored parts by number, and the marker of a cut log; and the part index the result
has. It is made from metadata only (the content's byte size, its part index, the fresh
parts' numbers and byte sizes, the cut), so the aggregation can have PostgreSQL concatenate
the pieces and no log text enters the worker. `run` executes a plan over bytes: the rule
the SQL statement follows, which the tests hold against `merge_unheld` and `finish`.

One thing the sizes cannot say: whether the bytes before a cut log's marker end inside a
line (then the marker starts with a line break, and its indexed size is one byte more).
The plan says where the marker goes (`marker_at`: after the first pieces, which are exactly
the log's bytes before it), and whoever executes it looks at that last byte.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from travis_logs.log_limit import Cut, marker
from travis_logs.merge import Merged, PartIndex


@dataclass(frozen=True)
class Held:
    """A byte range of the content the log holds: `size` bytes from offset `start`."""

    start: int
    size: int


@dataclass(frozen=True)
class Fresh:
    """A stored part the log does not hold yet, whole (`size`: its UTF-8 byte size)."""

    number: int
    size: int


@dataclass(frozen=True)
class Marker:
    """A cut log's marker line, without the line break that goes first after an open line."""

    body: bytes


Piece = Held | Fresh | Marker


@dataclass(frozen=True)
class Plan:
    """The merged log's pieces in order and its part index.

    `index` gives the marker's size without the line break; with one (`marker_at` is set
    and the pieces before it end inside a line) its entry `elided_from` is one byte more.
    """

    pieces: tuple[Piece, ...]
    index: PartIndex
    marker_at: int | None = None  # position of the Marker in `pieces`
    marker_number: int | None = None  # its number in the index

    @property
    def fresh(self) -> tuple[int, ...]:
        """The numbers of the stored parts the merge reads."""
        return tuple(p.number for p in self.pieces if isinstance(p, Fresh))


def plan(
    content_bytes: int, index: PartIndex, stored: Sequence[tuple[int, int]], cut: Cut | None
) -> Plan:
    """What `merge_unheld` (then `finish` for a cut log) makes of a log of `content_bytes`
    bytes indexed by `index` and its `stored` parts (number, byte size)."""
    head = content_bytes - index.indexed_bytes
    if head < 0:
        raise ValueError(
            f"part index covers {index.indexed_bytes} bytes, the log has {content_bytes}"
        )
    held = set(index.numbers)
    new = sorted((n, size) for n, size in stored if n not in held)
    if len({n for n, _ in new}) != len(new):
        raise ValueError("a part number is stored twice")
    entries: list[tuple[int, Piece]] = []
    at = head
    for number, size in zip(index.numbers, index.sizes, strict=True):
        entries.append((number, Held(at, size)))
        at += size
    entries.extend((number, Fresh(number, size)) for number, size in new)
    entries.sort(key=lambda entry: entry[0])
    if cut is not None:
        kept = [(n, piece) for n, piece in entries if not cut.elided(n)]
        line = Marker(marker(cut.elided_bytes, cut.elided_parts))
        before = sum(1 for n, _ in kept if n < cut.elided_from)
        entries = [*kept[:before], (cut.elided_from, line), *kept[before:]]
    return _joined(Held(0, head), entries, cut.elided_from if cut else None)


def _joined(head: Held, entries: Sequence[tuple[int, Piece]], marker_number: int | None) -> Plan:
    """The plan of `entries` after the unindexed `head`: adjacent held ranges joined into one
    range and empty pieces left out (fewer pieces, the same bytes), the index kept whole."""
    pieces: list[Piece] = []
    marker_at: int | None = None
    for piece in (head, *(piece for _, piece in entries)):
        if isinstance(piece, Marker):
            marker_at = len(pieces)
            pieces.append(piece)
            continue
        if piece.size == 0:
            continue
        last = pieces[-1] if pieces else None
        if _adjacent(last, piece):
            assert isinstance(last, Held)
            pieces[-1] = Held(last.start, last.size + piece.size)
        else:
            pieces.append(piece)
    numbers = tuple(n for n, _ in entries)
    sizes = tuple(_size(piece) for _, piece in entries)
    return Plan(tuple(pieces), PartIndex(numbers, sizes), marker_at, marker_number)


def _adjacent(last: Piece | None, piece: Piece) -> bool:
    """Whether `piece` is the content's range right after the range `last`."""
    return (
        isinstance(last, Held) and isinstance(piece, Held) and last.start + last.size == piece.start
    )


def _size(piece: Piece) -> int:
    return len(piece.body) if isinstance(piece, Marker) else piece.size


def line_open(before: bytes) -> bool:
    """Whether the marker needs a line break first: the log's bytes before it end in a line."""
    return before != b"" and not before.endswith(b"\n")


def run(plan: Plan, content: bytes, parts: Mapping[int, bytes]) -> Merged:
    """The plan executed over bytes: `content`, the log's bytes, and `parts` by number."""
    out: list[bytes] = []
    opened = False
    for at, piece in enumerate(plan.pieces):
        if isinstance(piece, Held):
            out.append(content[piece.start : piece.start + piece.size])
        elif isinstance(piece, Fresh):
            body = parts[piece.number]
            if len(body) != piece.size:
                raise ValueError(f"part {piece.number} is not the size planned")
            out.append(body)
        else:
            opened = at == plan.marker_at and line_open(b"".join(out))
            out.append(b"\n" + piece.body if opened else piece.body)
    return Merged(b"".join(out), with_break(plan, opened))


def with_break(plan: Plan, opened: bool) -> PartIndex:
    """The plan's index, its marker one byte more when a line break went first."""
    if not opened:
        return plan.index
    sizes = tuple(
        size + 1 if number == plan.marker_number else size
        for number, size in zip(plan.index.numbers, plan.index.sizes, strict=True)
    )
    return PartIndex(plan.index.numbers, sizes)
