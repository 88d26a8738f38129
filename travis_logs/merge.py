"""Splicing parts into a log in number order, with the part index that makes it repeatable.

The index lists the numbers of the parts a log's bytes hold and each one's byte size, in
number order. Bytes in front of the indexed parts (content set through PUT /logs, or
adopted from an older database) stay in front. No I/O here: the aggregate and redact
activities read the base (database or verified archive) and the parts and write the result;
a read of the API serves a log as the next aggregation will leave it, by the same rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PartIndex:
    """Part numbers (ascending) and the UTF-8 byte size of each, as stored in `logs`."""

    numbers: tuple[int, ...] = ()
    sizes: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if len(self.numbers) != len(self.sizes):
            raise ValueError("part index: numbers and sizes differ in length")

    @property
    def indexed_bytes(self) -> int:
        return sum(self.sizes)


@dataclass(frozen=True)
class Merged:
    """The merged log and its new index."""

    body: bytes
    index: PartIndex


def merge(base: bytes, index: PartIndex, parts: Sequence[tuple[int, bytes]]) -> Merged:
    """`base` with `parts` (number, bytes) spliced in by number; each number at most once."""
    head = len(base) - index.indexed_bytes
    if head < 0:
        raise ValueError(f"part index covers {index.indexed_bytes} bytes, the log has {len(base)}")
    new = sorted(parts)
    _check_new(index, new)
    pieces, numbers, sizes = [base[:head]], [], []
    pos, j = head, 0
    for number, size in zip(index.numbers, index.sizes, strict=True):
        while j < len(new) and new[j][0] < number:
            pieces.append(new[j][1])
            numbers.append(new[j][0])
            sizes.append(len(new[j][1]))
            j += 1
        pieces.append(base[pos : pos + size])
        numbers.append(number)
        sizes.append(size)
        pos += size
    for number, body in new[j:]:
        pieces.append(body)
        numbers.append(number)
        sizes.append(len(body))
    return Merged(b"".join(pieces), PartIndex(tuple(numbers), tuple(sizes)))


def merge_unheld(base: bytes, index: PartIndex, stored: Sequence[tuple[int, bytes]]) -> Merged:
    """`base` with the stored parts whose numbers it does not hold yet spliced in by number.

    Aggregation's rule, for whoever must show a log before aggregation has run: a number
    the log holds already (a re-delivery, or a divergent re-send) is skipped, never added.
    """
    held = set(index.numbers)
    return merge(base, index, [(n, body) for n, body in stored if n not in held])


def _check_new(index: PartIndex, new: Sequence[tuple[int, bytes]]) -> None:
    seen = set(index.numbers)
    for number, _ in new:
        if number in seen:
            raise ValueError(f"part {number} is already in the log")
        seen.add(number)
