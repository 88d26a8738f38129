"""Whether a log holds every part: the part numbers missing between its first and final part.

travis-worker numbers a job's parts from 0, one number per chunk, and sends the final part
as one more, empty, number (`amqp_log_writer.go`: `Close` publishes `logPartNumber` with
`final: true`). So a complete log holds every number from 0 to its final one. The HTTP
routes also accept `"number": "last"` (stored as LAST_PART_NUMBER, "append after
everything"): a final part numbered so ends the log after its highest other number, and
leaves no gap. A log whose lowest number is 1 counts from 1, as the viewer does (travis-logs'
own HTTP clients and tests number from 1). No I/O here: the aggregate activity, the API and
the workflow share it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from travis_logs.parts import LAST_PART_NUMBER

# A part range as [first, last], both missing (lists, not tuples: they cross Temporal's JSON).
Range = list[int]


def missing_ranges(numbers: Iterable[int], final_number: int | None) -> list[Range]:
    """The numbers missing from 0 to the final part (or, without one, the highest part)."""
    held = {n for n in numbers if n != LAST_PART_NUMBER}
    if final_number is None or final_number == LAST_PART_NUMBER:
        upper = max(held, default=-1)
    else:
        upper = final_number
    ranges: list[Range] = []
    expected = 1 if min(held, default=0) == 1 else 0
    for n in sorted(h for h in held if h <= upper):
        if n > expected:
            ranges.append([expected, n - 1])
        expected = n + 1
    if expected <= upper:
        ranges.append([expected, upper])
    return ranges


def is_complete(numbers: Sequence[int], final_number: int | None, missing: list[Range]) -> bool:
    """Complete: no gap, and the final part is stored (or the log is no parts at all, as
    after PUT /logs)."""
    return not missing and (final_number is not None or not numbers)


def compact(ranges: Iterable[Range]) -> str:
    """`[[3, 3], [5, 7]]` as "3, 5-7"."""
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in ranges)


def gap_offsets(
    head: int, numbers: Sequence[int], sizes: Sequence[int], ranges: Iterable[Range]
) -> list[int]:
    """The byte offset in the log where each missing range would be: after the `head`
    bytes in front of the parts, and after every held part numbered below the range."""
    offsets = []
    for first, _ in ranges:
        before = sum(size for n, size in zip(numbers, sizes, strict=True) if n < first)
        offsets.append(head + before)
    return offsets
