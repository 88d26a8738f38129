"""Masking secrets in log bytes: same length, so part sizes and offsets never move (no I/O).

A mask replaces every byte of an occurrence by `*`. The result is as long as the input, so
the part index (sizes in bytes) still fits, a byte range names the same bytes before and
after, masking again changes nothing, and the log never gets shorter. A literal string is
valid UTF-8 and so is the log, so an occurrence starts and ends on character boundaries
and the masked bytes are valid UTF-8 too; byte ranges are checked for that.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MASK = ord("*")
# The PostgreSQL channel a new redaction request notifies (with its job id), in the
# transaction that stores it; every ingest process listens on it.
REDACTIONS_CHANNEL = "log_redactions"


class RangeError(ValueError):
    """A byte range that cannot be masked as given (the message names the range)."""


@dataclass(frozen=True)
class Masked:
    """The masked bytes and how many occurrences and ranges changed something."""

    body: bytes
    occurrences: int  # literal occurrences found (overlapping ones counted each)
    ranges_changed: int  # ranges that covered at least one unmasked byte

    def changed(self, original: bytes) -> bool:
        return self.body != original


def sha256_of(secret: str) -> str:
    """What the audit row keeps of a literal string: the hex SHA-256 of its UTF-8 bytes."""
    return hashlib.sha256(secret.encode()).hexdigest()


def occurrences(data: bytes, secret: bytes) -> list[tuple[int, int]]:
    """Every [start, end) where `secret` occurs, overlapping occurrences included."""
    spans, at = [], data.find(secret)
    while at >= 0 and secret:
        spans.append((at, at + len(secret)))
        at = data.find(secret, at + 1)
    return spans


def check_range(data: bytes, start: int, end: int) -> None:
    """Refuse a range outside the log, empty, or cutting a UTF-8 character."""
    if not 0 <= start < end:
        raise RangeError(f"range [{start}, {end}): start must be >= 0 and below end")
    if end > len(data):
        raise RangeError(f"range [{start}, {end}) ends beyond the log's {len(data)} bytes")
    for edge in (start, end):
        if edge < len(data) and data[edge] & 0xC0 == 0x80:
            raise RangeError(f"range [{start}, {end}): byte {edge} is inside a UTF-8 character")


def mask(
    data: bytes, secrets: Iterable[str] = (), ranges: Sequence[tuple[int, int]] = ()
) -> Masked:
    """`data` with every occurrence of each secret and every byte range masked.

    Raises RangeError for a range `check_range` refuses (nothing is masked then).
    """
    for start, end in ranges:
        check_range(data, start, end)
    out = bytearray(data)
    found = 0
    for secret in dict.fromkeys(secrets):  # a string given twice is counted once
        for start, end in occurrences(data, secret.encode()):
            out[start:end] = bytes([MASK]) * (end - start)
            found += 1
    changed = 0
    for start, end in ranges:
        if out[start:end].count(MASK) != end - start:
            changed += 1
        out[start:end] = bytes([MASK]) * (end - start)
    return Masked(bytes(out), found, changed)


def mask_text(text: str, secrets: Sequence[str]) -> str:
    """One part's text with the literal secrets masked (the ingest's per-part rule)."""
    if not secrets or not any(s in text for s in secrets):
        return text
    return mask(text.encode(), secrets).body.decode()
