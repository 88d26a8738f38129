"""The merge planned from sizes gives, executed over bytes, what the merge over bytes gives."""

from __future__ import annotations

import random

import pytest

from travis_logs.log_limit import Cut, finish, marker
from travis_logs.merge import Merged, PartIndex, merge_unheld
from travis_logs.merge_plan import Fresh, Held, Marker, plan, run

# Multibyte characters so that piece boundaries fall between multibyte text.
_ALPHABET = ["a", "\n", "é", "€", "𝄞", "ü\n"]


def _text(rng: random.Random, most: int) -> bytes:
    return "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, most))).encode()


def _layout(rng: random.Random) -> tuple[bytes, PartIndex, list[tuple[int, bytes]], Cut | None]:
    """A log (unindexed head + held parts), stored parts (some held already), maybe a cut."""
    numbers = sorted(rng.sample(range(1, 40), rng.randint(0, 12)))
    cut = None
    if rng.random() < 0.6:
        elided_from = rng.randint(1, 30)
        tail_from = rng.randint(elided_from + 1, 40)
        cut = Cut(elided_from, tail_from, elided_bytes=rng.randint(0, 999), elided_parts=9)
    bodies = {n: _text(rng, 5) for n in numbers}
    if cut is not None and cut.elided_from in bodies and rng.random() < 0.5:
        bodies[cut.elided_from] = marker(1, 1, line_open=rng.random() < 0.5)  # an older marker
    head = _text(rng, 4)
    base = head + b"".join(bodies[n] for n in numbers)
    index = PartIndex(tuple(numbers), tuple(len(bodies[n]) for n in numbers))
    free = [n for n in range(1, 40) if n not in bodies]
    fresh = [(n, _text(rng, 5)) for n in rng.sample(free, rng.randint(0, 10))]
    redelivered = [(n, _text(rng, 3)) for n in rng.sample(numbers, min(2, len(numbers)))]
    return base, index, fresh + redelivered, cut


def _today(
    base: bytes, index: PartIndex, stored: list[tuple[int, bytes]], cut: Cut | None
) -> Merged:
    merged = merge_unheld(base, index, stored)
    return finish(merged, cut) if cut is not None else merged


@pytest.mark.parametrize("seed", range(400))
def test_the_plan_run_over_bytes_is_the_merge_over_bytes(seed: int) -> None:
    rng = random.Random(seed)
    base, index, stored, cut = _layout(rng)
    planned = plan(len(base), index, [(n, len(body)) for n, body in stored], cut)
    assert run(planned, base, dict(stored)) == _today(base, index, stored, cut)


def test_a_plan_joins_adjacent_held_ranges_and_reads_only_fresh_parts() -> None:
    index = PartIndex((1, 2, 4), (3, 4, 5))
    planned = plan(2 + 12, index, [(1, 3), (3, 6), (5, 0)], None)
    assert planned.pieces == (Held(0, 9), Fresh(3, 6), Held(9, 5))
    assert planned.fresh == (3,)
    assert planned.index == PartIndex((1, 2, 3, 4, 5), (3, 4, 6, 5, 0))


def test_a_cut_plan_places_the_marker_at_the_first_elided_number() -> None:
    cut = Cut(3, 6, elided_bytes=10, elided_parts=2)
    planned = plan(9, PartIndex((1, 2, 6), (3, 3, 3)), [(4, 5), (7, 2)], cut)
    line = marker(10, 2)
    assert planned.pieces == (Held(0, 6), Marker(line), Held(6, 3), Fresh(7, 2))
    assert planned.marker_at == 1
    assert planned.index == PartIndex((1, 2, 3, 6, 7), (3, 3, len(line), 3, 2))


def test_an_index_larger_than_the_log_is_refused() -> None:
    with pytest.raises(ValueError, match="covers 5 bytes"):
        plan(4, PartIndex((1,), (5,)), [], None)
