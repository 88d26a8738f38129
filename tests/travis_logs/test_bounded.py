"""`bounded`: values from outside are cut to a stated length, naming the original one."""

from __future__ import annotations

from travis_logs.bounded import LIMIT, bounded, bounded_repr


def test_short_values_are_kept_as_they_are() -> None:
    assert bounded("job 42") == "job 42"
    assert bounded(42) == "42"
    assert bounded(b"abc") == "abc"


def test_a_megabyte_is_cut_and_its_length_named() -> None:
    text = bounded("1" * 1_000_000)
    assert text == "1" * LIMIT + "… (1000000 bytes)"
    assert bounded(b"x" * 5000, 10) == "x" * 10 + "… (5000 bytes)"


def test_cuts_fall_on_character_boundaries_and_stay_valid_utf8() -> None:
    text = bounded("é" * 1000, 51)  # 2 bytes each: the 26th would be split
    assert text == "é" * 25 + "… (2000 bytes)"
    assert bounded("a\ud800b") == "a?b"  # a lone surrogate cannot go into a header
    assert bounded(b"\xff" * 3) == "\ufffd" * 3


def test_repr_shows_the_type_and_is_cut_without_building_it_whole() -> None:
    assert bounded_repr("x" * 10_000, 5) == "'xxxx… (10000 characters)"
    assert bounded_repr([1] * 1000, 9) == "[1, 1, 1,… (3000 bytes)"
    assert bounded_repr(None) == "None"


def test_ints_too_long_to_convert_are_named_not_raised() -> None:
    huge = 10**5000
    assert bounded(huge) == "<int too large to show>"
    assert bounded_repr(huge) == "<int too large to show>"
