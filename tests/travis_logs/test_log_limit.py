"""The size limit's decisions (travis_logs/log_limit.py): pure, no service."""

from __future__ import annotations

from random import Random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from travis_logs.log_limit import (
    Cut,
    Limits,
    finish,
    first_cut,
    marker,
    place,
    trim,
    without_middle,
)
from travis_logs.merge import PartIndex, merge
from travis_logs.settings import Settings

LIMITS = Limits(max_bytes=100, head_bytes=30, tail_bytes=50)


def tens(numbers: range) -> list[tuple[int, int]]:
    return [(n, 10) for n in numbers]


def cut_of(parts: list[tuple[int, int]]) -> Cut:
    decision = first_cut(parts, LIMITS)
    assert decision is not None
    return decision.cut


def test_first_cut_keeps_the_longest_head_and_tail_that_fit() -> None:
    """11 parts of 10 bytes (110 > 100): 3 in the head, 5 in the tail, 3 left out."""
    decision = first_cut(tens(range(11)), LIMITS)
    assert decision is not None
    assert decision.dropped == (3, 4, 5)
    assert decision.cut == Cut(3, 6, head_bytes=30, tail_bytes=50, elided_bytes=30, elided_parts=3)


def test_first_cut_never_splits_a_part() -> None:
    """A part that would overflow the head is left out whole, even if bytes remain."""
    parts = [(0, 25), (1, 10), (2, 60), (3, 45)]
    decision = first_cut(parts, LIMITS)
    assert decision is not None
    assert decision.dropped == (1, 2)
    assert (decision.cut.head_bytes, decision.cut.tail_bytes) == (25, 45)
    assert (decision.cut.elided_from, decision.cut.tail_from) == (1, 3)


def test_the_tail_is_a_ring_of_the_newest_parts() -> None:
    cut = cut_of(tens(range(11)))
    placed = place(cut, tens(range(11, 14)), LIMITS)
    assert placed.dropped == () and placed.cut.tail_bytes == 80
    trimmed = trim(placed.cut, tens(range(6, 11)), LIMITS)
    assert trimmed.dropped == (6, 7, 8)
    assert trimmed.cut.tail_from == 9 and trimmed.cut.tail_bytes == 50
    assert (trimmed.cut.elided_bytes, trimmed.cut.elided_parts) == (60, 6)


def test_trim_says_when_it_needs_more_of_the_oldest() -> None:
    cut = Cut(3, 6, head_bytes=30, tail_bytes=90)
    short = trim(cut, tens(range(6, 8)), LIMITS)
    assert short.dropped == (6, 7) and short.cut.tail_bytes == 70 > LIMITS.tail_bytes


def test_a_late_part_in_the_middle_is_counted_not_kept() -> None:
    cut = cut_of(tens(range(11)))
    late = place(cut, [(4, 7)], LIMITS)
    assert late.dropped == (4,)
    assert (late.cut.elided_bytes, late.cut.elided_parts) == (37, 4)
    assert late.cut.tail_bytes == cut.tail_bytes and late.cut.head_bytes == cut.head_bytes


def test_a_late_head_part_joins_the_head_only_if_it_fits() -> None:
    cut = cut_of([(0, 10), (2, 10), *tens(range(3, 12))])
    assert cut.elided_from == 4 and cut.head_bytes == 30
    full = place(cut, [(1, 1)], LIMITS)
    assert full.dropped == (1,) and full.cut.head_bytes == 30
    roomy = place(Cut(4, 8, head_bytes=20), [(1, 10)], LIMITS)
    assert roomy.dropped == () and roomy.cut.head_bytes == 30


def test_finish_puts_one_marker_line_where_the_middle_was() -> None:
    parts = [(0, b"a\n"), (1, b"b\n"), (2, b"c\n"), (3, b"d")]
    merged = merge(b"", PartIndex(), parts)
    cut = Cut(1, 3, elided_bytes=4, elided_parts=2)
    done = finish(merged, cut)
    assert done.body == b"a\n" + marker(4, 2) + b"d"
    assert done.index.numbers == (0, 1, 3)
    # Again with newer counts: the old marker is replaced, not kept.
    again = finish(done, Cut(1, 3, elided_bytes=9, elided_parts=3))
    assert again.body == b"a\n" + marker(9, 3) + b"d"


def test_the_marker_is_a_line_of_its_own() -> None:
    merged = merge(b"", PartIndex(), [(0, b"no newline"), (1, b"x"), (2, b"end\n")])
    done = finish(merged, Cut(1, 2, elided_bytes=1, elided_parts=1))
    assert done.body == b"no newline\n[travis-logs: 1 bytes in 1 parts left out here;" + (
        b" the log exceeded LOGS_MAX_BYTES]\nend\n"
    )


def test_left_out_is_not_missing() -> None:
    cut = Cut(5, 9)
    assert without_middle([[2, 3], [4, 10], [6, 7]], cut) == [[2, 3], [4, 4], [9, 10]]
    assert without_middle([[2, 3]], None) == [[2, 3]]


def test_settings_bound_the_limit() -> None:
    with pytest.raises(ValidationError, match="must not exceed LOGS_MAX_BYTES"):
        Settings(_env_file=None, logs_max_bytes=100, logs_head_bytes=60, logs_tail_bytes=60)
    with pytest.raises(ValidationError):
        Settings(_env_file=None, logs_max_bytes=1 << 30)
    assert Settings(_env_file=None).log_limits == Limits(64 << 20, 16 << 20, 48 << 20)


def test_the_middle_is_never_empty() -> None:
    """When the rest fits the tail, its oldest part is left out: the marker needs a number."""
    decision = first_cut([(0, 30), (1, 20), (2, 20)], LIMITS)
    assert decision is not None and decision.dropped == (1,)
    assert (decision.cut.elided_from, decision.cut.tail_from, decision.cut.tail_bytes) == (1, 2, 20)
    assert first_cut([(0, 10), (1, 10)], LIMITS) is None


def stream(
    batches: list[list[tuple[int, int]]], limits: Limits
) -> tuple[dict[int, int], Cut | None]:
    """What ingest/limit.py does with these decisions, batch by batch, on a dict of parts;
    asserts after every batch that the stored bytes fit the limit and every byte is either
    stored or counted."""
    stored: dict[int, int] = {}
    cut: Cut | None = None
    received = 0
    for batch in batches:
        first = dict(reversed(batch))  # the first copy of each number, as the intake
        new = [(n, size) for n, size in first.items() if n not in stored]
        stored.update(new)
        received += sum(size for _, size in new)
        decision = None
        if cut is None and received > limits.max_bytes:
            decision = first_cut(sorted(stored.items()), limits)
        elif cut is not None:
            decision = place(cut, new, limits)
        if decision is not None:
            cut = decision.cut
            for n in decision.dropped:
                del stored[n]
            while cut.tail_bytes > limits.tail_bytes:
                oldest = sorted((n, s) for n, s in stored.items() if n >= cut.tail_from)[:3]
                decision = trim(cut, oldest, limits)
                cut = decision.cut
                for n in decision.dropped:
                    del stored[n]
        assert sum(stored.values()) <= limits.max_bytes
        assert sum(stored.values()) + (cut.elided_bytes if cut else 0) == received
    return stored, cut


@given(
    sizes=st.lists(st.integers(0, 40), min_size=1, max_size=120),
    batch=st.integers(1, 9),
    head=st.integers(0, 60),
    tail=st.integers(0, 60),
)
def test_a_stream_in_order_keeps_the_longest_head_and_tail(
    sizes: list[int], batch: int, head: int, tail: int
) -> None:
    limits = Limits(max_bytes=head + tail + 10, head_bytes=head, tail_bytes=tail)
    parts = list(enumerate(sizes))
    stored, cut = stream([parts[i : i + batch] for i in range(0, len(parts), batch)], limits)
    if cut is None:
        assert sum(sizes) <= limits.max_bytes and stored == dict(parts)
        return
    kept_head = [n for n in sorted(stored) if n < cut.elided_from]
    kept_tail = [n for n in sorted(stored) if n >= cut.tail_from]
    assert sorted(stored) == kept_head + kept_tail
    assert kept_head == list(range(len(kept_head)))  # a run from the first part
    assert kept_tail == list(range(len(parts) - len(kept_tail), len(parts)))  # to the newest
    assert sum(stored[n] for n in kept_head) <= head and sum(stored[n] for n in kept_tail) <= tail
    assert cut.elided_parts == len(parts) - len(stored)


@given(
    sizes=st.lists(st.integers(0, 40), min_size=1, max_size=120),
    seed=st.randoms(use_true_random=False),
)
def test_any_arrival_order_stays_within_the_limit(sizes: list[int], seed: Random) -> None:
    """Shuffled arrivals (late head parts, late middle parts, re-sent numbers): the limit
    holds after every batch and every byte is stored or counted (asserted by `stream`)."""
    parts = list(enumerate(sizes))
    seed.shuffle(parts)
    resent = parts + parts[: len(parts) // 3]
    batches = [resent[i : i + 5] for i in range(0, len(resent), 5)]
    stream(batches, Limits(max_bytes=100, head_bytes=30, tail_bytes=50))
