"""The size limit that keeps a log's head and tail: which parts stay, which are left out.

A log of at most LOGS_MAX_BYTES is kept whole. Past it, it keeps its first LOGS_HEAD_BYTES
and its last LOGS_TAIL_BYTES, by part (never cutting one), and one marker line between them
says how many bytes and parts were left out: the end of a log, where the error is, survives.

The decisions are made while the job streams (the ingest), on sizes and numbers only:

* `first_cut`: the batch that takes the log past the limit cuts its stored parts into the
  head (the longest run from its first part that fits LOGS_HEAD_BYTES), the tail (the
  longest run up to its newest part that fits LOGS_TAIL_BYTES) and the middle, left out;
* `place`: after the cut, a new part below the middle joins the head if it fits (else it is
  left out), a part in the middle is left out, a newer one joins the tail;
* `trim`: the tail is a ring: its oldest parts are left out until it fits again.

A part left out is counted (bytes and parts) and not stored. No I/O here: the ingest
(`ingest/limit.py`) applies the decisions, the aggregation and the reads (`finish`) build
the text with the marker where the middle was.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from travis_logs.merge import Merged, PartIndex, merge

# (number, byte size) of one part, in number order wherever a sequence of them is passed.
Sized = tuple[int, int]


DEFAULT_MAX_BYTES = 64 << 20
DEFAULT_HEAD_BYTES = 16 << 20
DEFAULT_TAIL_BYTES = 48 << 20


@dataclass(frozen=True)
class Limits:
    """LOGS_MAX_BYTES, LOGS_HEAD_BYTES and LOGS_TAIL_BYTES (head + tail <= max)."""

    max_bytes: int = DEFAULT_MAX_BYTES
    head_bytes: int = DEFAULT_HEAD_BYTES
    tail_bytes: int = DEFAULT_TAIL_BYTES


@dataclass(frozen=True)
class Cut:
    """A cut log as its row records it: the middle is the numbers in [elided_from, tail_from)."""

    elided_from: int
    tail_from: int
    head_bytes: int = 0  # bytes of the stored head parts
    tail_bytes: int = 0  # bytes of the stored tail parts
    elided_bytes: int = 0
    elided_parts: int = 0

    def elided(self, number: int) -> bool:
        return self.elided_from <= number < self.tail_from


# The columns `cut_of` reads: select them in every query whose row it is given.
CUT_COLUMNS = "elided_from, tail_from, head_bytes, tail_bytes, elided_bytes, elided_parts"


def cut_of(row: Mapping[str, Any]) -> Cut | None:
    """The cut a `logs` row records (it selected CUT_COLUMNS); None: the log is whole."""
    if row["elided_from"] is None:
        return None
    return Cut(
        row["elided_from"],
        row["tail_from"],
        row["head_bytes"],
        row["tail_bytes"],
        row["elided_bytes"],
        row["elided_parts"],
    )


@dataclass(frozen=True)
class Decision:
    """The cut after a step, and the part numbers it leaves out (to delete, now counted)."""

    cut: Cut
    dropped: tuple[int, ...] = ()


def first_cut(parts: Sequence[Sized], limits: Limits) -> Decision | None:
    """Cut a log's stored parts (number order) into head, middle (left out) and tail.

    The middle is never empty: when the rest fits the tail, its oldest part is left out, so
    the marker has a number no kept part has. None: every part fits the head (the stored
    parts are not what took the log past the limit: the rest was purged), nothing to cut.
    """
    head_end, head = 0, 0
    while head_end < len(parts) and head + parts[head_end][1] <= limits.head_bytes:
        head += parts[head_end][1]
        head_end += 1
    if head_end == len(parts):
        return None
    tail_start, tail = len(parts), 0
    while tail_start > head_end and tail + parts[tail_start - 1][1] <= limits.tail_bytes:
        tail += parts[tail_start - 1][1]
        tail_start -= 1
    if tail_start == head_end:
        tail -= parts[tail_start][1]
        tail_start += 1
    middle = parts[head_end:tail_start]
    elided_from = parts[head_end - 1][0] + 1 if head_end else parts[0][0]
    tail_from = parts[tail_start][0] if tail_start < len(parts) else parts[-1][0] + 1
    cut = Cut(
        elided_from,
        tail_from,
        head_bytes=head,
        tail_bytes=tail,
        elided_bytes=sum(size for _, size in middle),
        elided_parts=len(middle),
    )
    return Decision(cut, tuple(n for n, _ in middle))


def place(cut: Cut, new: Iterable[Sized], limits: Limits) -> Decision:
    """New parts of a cut log: into the head if below the middle and it fits, left out if in
    the middle (or the head is full), into the tail if newer (`trim` then bounds it)."""
    dropped: list[int] = []
    head, tail, elided_bytes = cut.head_bytes, cut.tail_bytes, cut.elided_bytes
    for number, size in sorted(new):
        if number < cut.elided_from and head + size <= limits.head_bytes:
            head += size
        elif number < cut.tail_from:
            dropped.append(number)
            elided_bytes += size
        else:
            tail += size
    after = replace(
        cut,
        head_bytes=head,
        tail_bytes=tail,
        elided_bytes=elided_bytes,
        elided_parts=cut.elided_parts + len(dropped),
    )
    return Decision(after, tuple(dropped))


def trim(cut: Cut, oldest: Sequence[Sized], limits: Limits) -> Decision:
    """Leave out the oldest tail parts (`oldest`: the tail's first stored parts, in number
    order) until the tail fits; `cut.tail_bytes > limits.tail_bytes` still when `oldest`
    ran out before (the caller reads the next ones)."""
    dropped: list[int] = []
    tail, elided_bytes, tail_from = cut.tail_bytes, cut.elided_bytes, cut.tail_from
    for number, size in oldest:
        if tail <= limits.tail_bytes:
            break
        dropped.append(number)
        tail -= size
        elided_bytes += size
        tail_from = number + 1
    after = replace(
        cut,
        tail_from=tail_from,
        tail_bytes=tail,
        elided_bytes=elided_bytes,
        elided_parts=cut.elided_parts + len(dropped),
    )
    return Decision(after, tuple(dropped))


def marker(elided_bytes: int, elided_parts: int, *, line_open: bool = False) -> bytes:
    """The one line that stands where the middle was (a line break first when the head
    ends inside a line, so the marker is a line of its own)."""
    text = (
        f"[travis-logs: {elided_bytes} bytes in {elided_parts} parts left out here;"
        " the log exceeded LOGS_MAX_BYTES]\n"
    )
    return (b"\n" if line_open else b"") + text.encode()


def finish(merged: Merged, cut: Cut) -> Merged:
    """A cut log's text: `merged` (the log with its parts spliced in) without the parts in
    the middle (an earlier marker included), with the marker where the middle starts.

    The marker is indexed as the part numbered `elided_from`: no stored part can have that
    number (the ingest leaves it out), so a later merge or purge passes over it, and the next
    `finish` replaces it with the marker of the counts then.
    """
    head = len(merged.body) - merged.index.indexed_bytes
    pieces, numbers, sizes = [merged.body[:head]], [], []
    at, before = head, head
    for number, size in zip(merged.index.numbers, merged.index.sizes, strict=True):
        if not cut.elided(number):
            pieces.append(merged.body[at : at + size])
            numbers.append(number)
            sizes.append(size)
            if number < cut.elided_from:
                before += size
        at += size
    body = b"".join(pieces)
    line_open = before > 0 and not body[:before].endswith(b"\n")
    line = marker(cut.elided_bytes, cut.elided_parts, line_open=line_open)
    return merge(body, PartIndex(tuple(numbers), tuple(sizes)), [(cut.elided_from, line)])


def without_middle(ranges: Iterable[list[int]], cut: Cut | None) -> list[list[int]]:
    """Missing part ranges ([first, last]) less the middle of a cut log: left out is not
    missing (the marker stands for it)."""
    out: list[list[int]] = []
    for first, last in ranges:
        if cut is None:
            out.append([first, last])
            continue
        if first < cut.elided_from:
            out.append([first, min(last, cut.elided_from - 1)])
        if last >= cut.tail_from:
            out.append([max(first, cut.tail_from), last])
    return out
