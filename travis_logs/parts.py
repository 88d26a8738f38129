"""Log parts as travis-worker sends them: the part every process sees once parsed and cleaned,
and the one input contract that parses, validates and cleans it (no I/O).

AMQP messages (the ingest) and the HTTP schemas (`api.schemas`) call the same functions, so
both accept and reject the same shapes (README "Input contract"). As travis-logs did, ids
and numbers may be integers or strings of ASCII digits; `final` is a JSON boolean;
`encoding` is absent or "base64". `clean` is the content-cleaning rule every reader of
stored bytes applies too.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

import orjson

from travis_logs.bounded import bounded, bounded_repr
from travis_logs.errors import InvalidLogPart

# `"number": "last"` sorts after every other part; travis-logs stores it as INT_MAX.
LAST_PART_NUMBER = 2147483647
MAX_JOB_ID = 2**63 - 1  # logs.job_id is a bigint


@dataclass(frozen=True, slots=True)
class LogPart:
    """One cleaned part of a job's log: what the database stores and Pusher forwards."""

    job_id: int
    number: int
    content: str
    final: bool = False


def clean(raw: bytes) -> str:
    """Text with invalid UTF-8 sequences and NUL bytes dropped (travis' `Coder.clean`)."""
    return raw.decode("utf-8", errors="ignore").replace("\x00", "")


def clean_text(text: str) -> str:
    """The same cleaning for text that JSON escapes may have filled with NULs or lone surrogates."""
    if "\x00" in text:
        text = text.replace("\x00", "")
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate ("\ud800" in the JSON) cannot be stored in PostgreSQL.
        return text.encode("utf-8", errors="ignore").decode("utf-8")
    return text


ENCODINGS = (None, "base64")
# Longer digit strings are out of range anyway; int() of a huge one is slow (and limited).
_MAX_DIGITS = len(str(MAX_JOB_ID))


def decode_log(log: str, encoding: object) -> str:
    """The part's text: base64-decoded when `encoding` says so, then cleaned."""
    if encoding_of(encoding) is None:
        return clean_text(log)
    try:
        # Ruby's encode64 wraps lines; whitespace is not data.
        raw = base64.b64decode("".join(log.split()), validate=True)
    except (binascii.Error, ValueError) as err:
        raise InvalidLogPart(f"base64: log is not valid base64 ({bounded(err)})") from None
    return clean(raw)


def parse_message(body: bytes, max_part_bytes: int) -> LogPart:
    """The part an AMQP body describes; raises InvalidLogPart with the reason it is not one.

    Reasons read `<field>: <what is wrong>`; the field names the kind (json, size, id, ...).
    """
    if len(body) > max_part_bytes:
        raise InvalidLogPart(f"size: {len(body)} bytes exceed MAX_PART_BYTES={max_part_bytes}")
    try:
        # Valid UTF-8 without raw NULs (nearly every part) parses as is, in a sixth of the time.
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        payload = _parse_cleaned(body)
    if not isinstance(payload, dict):
        raise InvalidLogPart(f"json: not an object but {type(payload).__name__}")
    return part_from_payload(payload)


def _parse_cleaned(body: bytes) -> Any:
    """travis-logs' order: clean the bytes, then parse (also what orjson is stricter about)."""
    try:
        return json.loads(clean(body))
    except (ValueError, RecursionError) as err:  # RecursionError: absurdly deep nesting
        raise InvalidLogPart(f"json: not JSON ({bounded_repr(err)})") from None


def part_from_payload(payload: dict[str, Any]) -> LogPart:
    """Validate the fields of a decoded payload (`id`, `log`, `number`, `final`, `encoding`)."""
    return LogPart(
        job_id=job_id(payload.get("id")),
        number=part_number(payload.get("number")),
        content=decode_log(log_text(payload.get("log")), payload.get("encoding")),
        final=final_flag(payload.get("final")),
    )


def job_id(value: object, field: str = "id") -> int:
    """A job id: an integer or a string of digits, 1 to 2^63-1."""
    number = _integer(value)
    if number is None:
        raise InvalidLogPart(f"{field}: must be an integer job id, got {_describe(value)}")
    if not 0 < number <= MAX_JOB_ID:
        raise InvalidLogPart(f"{field}: {bounded(value)} is not a valid job id")
    return number


def part_number(value: object) -> int:
    """A part number: an integer or a string of digits, 0 to 2^31-1, or "last"."""
    if value == "last":
        return LAST_PART_NUMBER
    number = _integer(value)
    if number is None:
        raise InvalidLogPart(f'number: must be an integer or "last", got {_describe(value)}')
    if number < 0:
        raise InvalidLogPart(f"number: must not be negative, got {number}")
    if number > LAST_PART_NUMBER:
        raise InvalidLogPart(f"number: {bounded(value)} is out of range (max {LAST_PART_NUMBER})")
    return number


def final_flag(value: object) -> bool:
    """`final`: a JSON boolean; absent (None) means false. "true" or 1 are not booleans."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidLogPart(f"final: must be a boolean, got {_describe(value)}")
    return value


def log_text(value: object) -> str:
    """The text field (`log`, or `content` over HTTP); absent means empty (a final marker)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidLogPart(f"log: must be a string, got {type(value).__name__}")
    return value


def encoding_of(value: object) -> str | None:
    """`encoding`: absent (plain text) or "base64"; anything else would store garbage."""
    if value not in ENCODINGS:
        raise InvalidLogPart(f'encoding: must be absent or "base64", got {_describe(value)}')
    return None if value is None else "base64"


def _integer(value: object) -> int | None:
    """An int (not a bool: JSON true/false arrive as bool, which Python counts as int), or a
    string of ASCII digits, as an int; None for anything else."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value) if len(value) <= _MAX_DIGITS else MAX_JOB_ID + 1
    return None


def _describe(value: object) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {bounded_repr(value, 40)}"
