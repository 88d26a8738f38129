"""Which part numbers a log misses, from the numbers it holds and its final part (pure)."""

from __future__ import annotations

from travis_logs.completeness import compact, gap_offsets, is_complete, missing_ranges
from travis_logs.parts import LAST_PART_NUMBER


def test_a_worker_numbered_log_with_its_empty_final_part_misses_nothing() -> None:
    """travis-worker: parts 0..n, then the final empty part n+1."""
    assert missing_ranges(range(6), final_number=5) == []
    assert missing_ranges([0], final_number=0) == []  # a job that printed nothing


def test_a_final_part_numbered_last_makes_no_gap() -> None:
    assert missing_ranges([0, 1, 2, LAST_PART_NUMBER], LAST_PART_NUMBER) == []
    assert missing_ranges([LAST_PART_NUMBER], LAST_PART_NUMBER) == []
    assert missing_ranges([0, 2, LAST_PART_NUMBER], LAST_PART_NUMBER) == [[1, 1]]


def test_missing_numbers_are_compact_ranges() -> None:
    ranges = missing_ranges([0, 2, 6, 7, 9], final_number=10)
    assert ranges == [[1, 1], [3, 5], [8, 8], [10, 10]]
    assert compact(ranges) == "1, 3-5, 8, 10"


def test_a_lost_first_part_is_missing_but_numbering_from_one_is_not() -> None:
    assert missing_ranges([2, 3], final_number=3) == [[0, 1]]
    assert missing_ranges([1, 2, 3], final_number=3) == []


def test_duplicates_and_parts_after_the_final_one_change_nothing() -> None:
    assert missing_ranges([0, 0, 1, 1, 3, 3], final_number=3) == [[2, 2]]
    assert missing_ranges([0, 1, 2, 7], final_number=2) == []


def test_empty_logs_and_logs_without_a_final_part() -> None:
    assert missing_ranges([], final_number=None) == []
    assert is_complete([], None, [])  # content set whole through PUT /logs
    assert missing_ranges([0, 3], final_number=None) == [[1, 2]]  # up to the highest part
    assert not is_complete([0, 1], None, [])  # still streaming
    assert is_complete([0, 1], 1, [])
    assert not is_complete([0, 2], 2, [[1, 1]])


def test_gap_offsets_are_where_the_missing_parts_would_be() -> None:
    # 4 bytes in front (PUT content), parts 0 (3 bytes) and 2 (5 bytes); 1 and 3 missing.
    assert gap_offsets(4, [0, 2], [3, 5], [[1, 1], [3, 3]]) == [7, 12]
    assert gap_offsets(0, [2], [5], [[0, 1]]) == [0]
