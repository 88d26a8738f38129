"""Random log layouts for the merge's tests: a log's bytes and index, stored parts, a cut."""

from __future__ import annotations

import random

from travis_logs.log_limit import Cut, finish, marker
from travis_logs.merge import Merged, PartIndex, merge_unheld

# Multibyte characters so that piece boundaries fall between multibyte text.
_ALPHABET = ["a", "\n", "é", "€", "𝄞", "ü\n"]


def text(rng: random.Random, most: int) -> bytes:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, most))).encode()


def layout(rng: random.Random) -> tuple[bytes, PartIndex, list[tuple[int, bytes]], Cut | None]:
    """A log (unindexed head + held parts), stored parts (some held already), maybe a cut."""
    numbers = sorted(rng.sample(range(1, 40), rng.randint(0, 12)))
    cut = None
    if rng.random() < 0.6:
        elided_from = rng.randint(1, 30)
        tail_from = rng.randint(elided_from + 1, 40)
        cut = Cut(elided_from, tail_from, elided_bytes=rng.randint(0, 999), elided_parts=9)
    bodies = {n: text(rng, 5) for n in numbers}
    if cut is not None and cut.elided_from in bodies and rng.random() < 0.5:
        bodies[cut.elided_from] = marker(1, 1, line_open=rng.random() < 0.5)  # an older marker
    head = text(rng, 4)
    base = head + b"".join(bodies[n] for n in numbers)
    index = PartIndex(tuple(numbers), tuple(len(bodies[n]) for n in numbers))
    free = [n for n in range(1, 40) if n not in bodies]
    fresh = [(n, text(rng, 5)) for n in rng.sample(free, rng.randint(0, 10))]
    redelivered = [(n, text(rng, 3)) for n in rng.sample(numbers, min(2, len(numbers)))]
    return base, index, fresh + redelivered, cut


def merged_today(
    base: bytes, index: PartIndex, stored: list[tuple[int, bytes]], cut: Cut | None
) -> Merged:
    merged = merge_unheld(base, index, stored)
    return finish(merged, cut) if cut is not None else merged
