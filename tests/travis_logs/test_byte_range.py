"""Byte ranges as RFC 9110 reads them, and line ranges: no service needed."""

from __future__ import annotations

import pytest

from travis_logs.byte_range import (
    ByteRange,
    LineRange,
    Unsatisfiable,
    line_slice,
    parse_lines,
    parse_range,
)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-9", ByteRange(0, 9, 100)),
        ("bytes=90-", ByteRange(90, 99, 100)),
        ("bytes=-10", ByteRange(90, 99, 100)),
        ("bytes=-500", ByteRange(0, 99, 100)),  # a suffix longer than the log: all of it
        ("bytes=95-200", ByteRange(95, 99, 100)),  # an end past the log is cut to it
        ("BYTES = 5 - 5", ByteRange(5, 5, 100)),
    ],
)
def test_one_range_is_resolved_against_the_size(header: str, expected: ByteRange) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "bytes=0-1,5-6",
        "lines=1-2",
        "bytes=9-3",
        "bytes=-",
        "bytes=a-b",
        "bytes=1" + "0" * 30 + "-",
    ],
)
def test_several_ranges_or_invalid_headers_are_ignored(header: str | None) -> None:
    assert parse_range(header, 100) is None


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=-5", 0), ("bytes=0-", 0)]
)
def test_a_range_past_the_end_is_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(Unsatisfiable):
        parse_range(header, size)


def test_content_range_names_the_bytes_and_the_size() -> None:
    assert parse_range("bytes=-3", 10) == ByteRange(7, 9, 10)
    assert ByteRange(7, 9, 10).content_range() == "bytes 7-9/10"
    assert ByteRange(7, 9, 10).length == 3


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1-1", LineRange(1, 1)), ("3-", LineRange(3, None)), ("2-5", LineRange(2, 5))],
)
def test_line_ranges_parse(value: str, expected: LineRange) -> None:
    assert parse_lines(value) == expected


@pytest.mark.parametrize("value", ["0-2", "5-3", "-3", "a-b", "1-2-3", ""])
def test_bad_line_ranges_say_why(value: str) -> None:
    with pytest.raises(ValueError, match="lines must"):
        parse_lines(value)


BODY = b"one\ntwo\nthree\nfour"


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (LineRange(1, 1), b"one\n"),
        (LineRange(2, 3), b"two\nthree\n"),
        (LineRange(4, None), b"four"),  # the last line without its newline
        (LineRange(3, 99), b"three\nfour"),
        (LineRange(9, None), b""),
    ],
)
def test_line_slice_takes_whole_lines(lines: LineRange, expected: bytes) -> None:
    assert line_slice(BODY, lines) == expected


def test_line_slice_from_a_known_line_start() -> None:
    """A body that starts at line 3 (an index's checkpoint) counts from there."""
    assert line_slice(b"three\nfour", LineRange(4, 4), first_line=3) == b"four"
