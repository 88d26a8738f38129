"""Splicing parts into a log by number, with the part index (no I/O)."""

from __future__ import annotations

import pytest

from travis_logs.merge import PartIndex, merge, merge_unheld


def test_parts_are_spliced_between_indexed_parts_in_number_order() -> None:
    """A late part 2 lands between parts 1 and 3 of an aggregated log, not at its end."""
    base = "one\nzwei ✓\nfour\n".encode()
    index = PartIndex((1, 2, 4), (4, len("zwei ✓\n".encode()), 5))
    merged = merge(base, index, [(3, b"three\n"), (0, b"zero\n"), (9, b"nine\n")])
    assert merged.body.decode() == "zero\none\nzwei ✓\nthree\nfour\nnine\n"
    assert merged.index.numbers == (0, 1, 2, 3, 4, 9)
    assert sum(merged.index.sizes) == len(merged.body)


def test_bytes_before_the_indexed_parts_stay_in_front() -> None:
    """Content set by PUT (not made of parts) keeps its place ahead of later parts."""
    merged = merge(b"replaced\n", PartIndex(), [(5, b"late\n")])
    assert merged.body == b"replaced\nlate\n"
    assert merged.index == PartIndex((5,), (5,))


def test_a_number_the_log_holds_already_is_refused() -> None:
    """Merging cannot duplicate a part: a held number raises instead of appearing twice."""
    with pytest.raises(ValueError, match="already in the log"):
        merge(b"a\n", PartIndex((0,), (2,)), [(0, b"a\n")])


def test_an_index_larger_than_the_log_is_refused() -> None:
    """An index that does not fit the bytes is an error, not a silently garbled log."""
    with pytest.raises(ValueError, match="covers 10 bytes"):
        merge(b"short", PartIndex((0,), (10,)), [])


def test_merge_unheld_skips_numbers_the_log_holds_the_rule_reads_share() -> None:
    """Re-sent numbers (also with other text) are skipped; new ones go in by number."""
    base = b"one\ntwo\n"
    index = PartIndex((1, 2), (4, 4))
    stored = [(2, b"TWO, re-sent\n"), (0, b"zero\n"), (3, b"three\n")]
    merged = merge_unheld(base, index, stored)
    assert merged.body == b"zero\none\ntwo\nthree\n"
    assert merged.index.numbers == (0, 1, 2, 3)
