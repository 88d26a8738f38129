"""Parsing and cleaning of travis-worker's log part messages (reference §1.1, §8.1)."""

from __future__ import annotations

import base64
import json

import pytest

from travis_logs.errors import InvalidLogPart
from travis_logs.parts import LAST_PART_NUMBER, LogPart, clean, decode_log, parse_message

LIMIT = 1 << 20


def body(**fields: object) -> bytes:
    return json.dumps({"id": 7, "log": "x", "number": 1, "final": False, **fields}).encode()


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"hello to the world\xf1\xe5\x7a!", "hello to the worldz!"),
        (b"hello, world \xfa\xca\xde\x86wowbytes", "hello, world \u0786wowbytes"),
        (b"nul\x00bytes\x00", "nulbytes"),
        ("strike! \u270a".encode(), "strike! \u270a"),
    ],
)
def test_clean_drops_invalid_utf8_and_nul(raw: bytes, text: str) -> None:
    """The cleaning vectors of travis' Coder hold: invalid sequences and NULs go, the rest stays."""
    assert clean(raw) == text


def test_worker_payload_becomes_a_part() -> None:
    """travis-worker's JSON (with uuid and meta) gives job id, number, text and final flag."""
    raw = body(id=1919, log="strike! \u270a", number=204, uuid="u-1", meta={"queue": "q"})
    assert parse_message(raw, LIMIT) == LogPart(1919, 204, "strike! \u270a", False)


def test_invalid_utf8_inside_the_body_is_dropped_before_parsing() -> None:
    """Bytes that are not UTF-8 in the raw message are dropped, not a reason to refuse it."""
    raw = b'{"id": 3, "log": "hello to the world\xf1\xe5\x7a!", "number": 0}'
    assert parse_message(raw, LIMIT).content == "hello to the worldz!"


def test_json_escaped_nul_and_lone_surrogates_are_dropped() -> None:
    """Text PostgreSQL cannot store (NUL, lone surrogates) is cleaned after JSON decoding too."""
    raw = b'{"id": 3, "log": "a\\u0000b\\ud800c\\u00e9", "number": 0}'
    assert parse_message(raw, LIMIT).content == "abc\u00e9"


def test_base64_log_is_decoded_and_cleaned() -> None:
    """`encoding: base64` carries raw bytes, which are decoded then cleaned like text."""
    encoded = base64.b64encode(b"hello to the world\xf1\xe5\x7a!\x00").decode()
    assert parse_message(body(log=encoded, encoding="base64"), LIMIT).content == (
        "hello to the worldz!"
    )


def test_base64_wrapped_in_lines_is_accepted() -> None:
    """Ruby's encode64 wraps every 60 characters; the line breaks are not data."""
    encoded = base64.encodebytes(b"x" * 100).decode()
    assert "\n" in encoded
    assert decode_log(encoded, "base64") == "x" * 100


def test_ids_and_numbers_may_be_digit_strings() -> None:
    """As in travis-logs, "7" and "12" are the job id 7 and part number 12."""
    assert parse_message(body(id="7", number="12"), LIMIT) == LogPart(7, 12, "x", False)


def test_last_number_sorts_after_everything() -> None:
    """`"number": "last"` is stored as INT_MAX, after every other part."""
    part = parse_message(body(number="last", final=True), LIMIT)
    assert (part.number, part.final) == (LAST_PART_NUMBER, True)


def test_missing_log_is_an_empty_part() -> None:
    """A final marker without a `log` key is an empty final part, not an error."""
    raw = json.dumps({"id": 5, "number": 9, "final": True}).encode()
    assert parse_message(raw, LIMIT) == LogPart(5, 9, "", True)


@pytest.mark.parametrize(
    ("raw", "kind"),
    [
        (b"not json", "json"),
        (b"[1, 2]", "json"),
        (b'"text"', "json"),
        (json.dumps({"log": "x", "number": 1}).encode(), "id"),
        (body(id="7a"), "id"),
        (body(id=" 7"), "id"),
        (body(id="\u0667"), "id"),
        (body(id="9" * 5000), "id"),
        (body(id=True), "id"),
        (body(id=0), "id"),
        (body(number=None), "number"),
        (body(number=1.5), "number"),
        (body(number="3.0"), "number"),
        (body(number=-1), "number"),
        (body(number=LAST_PART_NUMBER + 1), "number"),
        (body(log=12), "log"),
        (body(final="yes"), "final"),
        (body(final="true"), "final"),
        (body(final=1), "final"),
        (body(encoding="gzip"), "encoding"),
        (body(encoding=""), "encoding"),
        (body(log="!!not base64!!", encoding="base64"), "base64"),
        (body(log="x" * (LIMIT + 1)), "size"),
    ],
)
def test_invalid_messages_are_refused_with_their_reason(raw: bytes, kind: str) -> None:
    """Each kind of bad message raises InvalidLogPart whose reason starts with its kind."""
    with pytest.raises(InvalidLogPart) as caught:
        parse_message(raw, LIMIT)
    assert caught.value.reason.startswith(f"{kind}: ")
