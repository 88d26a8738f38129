"""Log parts as travis-worker sends them: parsing, validation and content cleaning (no I/O)."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import orjson

from travis_logs.errors import InvalidLogPart
from travis_logs.parts import LAST_PART_NUMBER, MAX_JOB_ID, LogPart


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


def decode_log(log: str, encoding: str | None) -> str:
    """The part's text: base64-decoded when `encoding` says so, then cleaned."""
    if encoding != "base64":
        return clean_text(log)
    try:
        # Ruby's encode64 wraps lines; whitespace is not data.
        raw = base64.b64decode("".join(log.split()), validate=True)
    except (binascii.Error, ValueError) as err:
        raise InvalidLogPart(f"base64: log is not valid base64 ({err})") from None
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
        raise InvalidLogPart(f"json: not JSON ({err!r:.200})") from None


def part_from_payload(payload: dict[str, Any]) -> LogPart:
    """Validate the fields of a decoded payload (`id`, `log`, `number`, `final`, `encoding`)."""
    log = payload.get("log")
    if log is None:
        log = ""  # a final marker may come without text
    elif not isinstance(log, str):
        raise InvalidLogPart(f"log: must be a string, got {type(log).__name__}")
    encoding = payload.get("encoding")
    return LogPart(
        job_id=_job_id(payload.get("id")),
        number=part_number(payload.get("number")),
        content=decode_log(log, encoding if isinstance(encoding, str) else None),
        final=_final(payload.get("final")),
    )


def part_number(value: object) -> int:
    """A part number: a non-negative 32-bit integer, or "last"."""
    if value == "last":
        return LAST_PART_NUMBER
    if not _is_int(value):
        raise InvalidLogPart(f'number: must be an integer or "last", got {_describe(value)}')
    assert isinstance(value, int)
    if value < 0:
        raise InvalidLogPart(f"number: must not be negative, got {value}")
    if value > LAST_PART_NUMBER:
        raise InvalidLogPart(f"number: {value} is out of range (max {LAST_PART_NUMBER})")
    return value


def _job_id(value: object) -> int:
    if not _is_int(value):
        raise InvalidLogPart(f"id: must be an integer job id, got {_describe(value)}")
    assert isinstance(value, int)
    if not 0 < value <= MAX_JOB_ID:
        raise InvalidLogPart(f"id: {value} is not a valid job id")
    return value


def _final(value: object) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidLogPart(f"final: must be a boolean, got {_describe(value)}")
    return value


def _is_int(value: object) -> bool:
    # JSON true/false arrive as bool, which Python counts as int.
    return isinstance(value, int) and not isinstance(value, bool)


def _describe(value: object) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r:.40}"
