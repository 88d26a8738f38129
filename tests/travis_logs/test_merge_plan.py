"""The merge planned from sizes gives, executed over bytes, what the merge over bytes gives."""

from __future__ import annotations

import random

import pytest

from tests.merge_layouts import layout, merged_today
from travis_logs.log_limit import Cut, marker
from travis_logs.merge import PartIndex
from travis_logs.merge_plan import Fresh, Held, Marker, plan, run


@pytest.mark.parametrize("seed", range(400))
def test_the_plan_run_over_bytes_is_the_merge_over_bytes(seed: int) -> None:
    rng = random.Random(seed)
    base, index, stored, cut = layout(rng)
    planned = plan(len(base), index, [(n, len(body)) for n, body in stored], cut)
    assert run(planned, base, dict(stored)) == merged_today(base, index, stored, cut)


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
