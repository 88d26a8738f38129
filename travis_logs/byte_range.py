"""HTTP byte ranges (RFC 9110 section 14) and line ranges over a log of known size; pure.

Only a single range is honoured: a header naming several is ignored and the whole log is
served with 200, as RFC 9110 allows (a multipart/byteranges answer buys a log reader
nothing). A header that is not a valid `bytes=` range is ignored the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SINGLE = re.compile(r"bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", re.IGNORECASE)
_LINES = re.compile(r"(\d+)-(\d*)")
# Digits beyond this many are no offset any log has (and int() of a huge string is CPU).
_MAX_DIGITS = 19


class Unsatisfiable(ValueError):
    """A valid range that selects nothing of the log (HTTP 416)."""


@dataclass(frozen=True)
class ByteRange:
    """Bytes `start`..`end` inclusive of a log of `size` bytes."""

    start: int
    end: int
    size: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1

    def content_range(self) -> str:
        return f"bytes {self.start}-{self.end}/{self.size}"


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range `header` asks of `size` bytes; None: serve the whole log.

    Raises Unsatisfiable for a valid range past the end (or a suffix of zero bytes)."""
    if not header:
        return None
    match = _SINGLE.fullmatch(header.strip())
    if match is None:
        return None  # several ranges, another unit, or garbage: ignored
    first, last = match.group(1), match.group(2)
    if (not first and not last) or len(first) > _MAX_DIGITS or len(last) > _MAX_DIGITS:
        return None
    if not first:  # bytes=-n: the last n bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise Unsatisfiable(header)
        return ByteRange(max(0, size - suffix), size - 1, size)
    start = int(first)
    if last and int(last) < start:
        return None  # invalid: RFC 9110 says to ignore it
    if start >= size:
        raise Unsatisfiable(header)
    end = min(int(last), size - 1) if last else size - 1
    return ByteRange(start, end, size)


@dataclass(frozen=True)
class LineRange:
    """Lines `first`..`last` (1-based, inclusive; `last` None: to the end)."""

    first: int
    last: int | None


def parse_lines(value: str) -> LineRange:
    """`a-b` or `a-`; ValueError with a reason otherwise."""
    match = _LINES.fullmatch(value.strip())
    if match is None or len(value) > 2 * _MAX_DIGITS + 1:
        raise ValueError("lines must be a-b or a- (1-based, inclusive)")
    first = int(match.group(1))
    last = int(match.group(2)) if match.group(2) else None
    if first < 1 or (last is not None and last < first):
        raise ValueError("lines must start at 1 or later and end at or after their start")
    return LineRange(first, last)


def line_slice(body: bytes, lines: LineRange, first_line: int = 1) -> bytes:
    """The bytes of `lines` in `body`, whose first byte starts line `first_line`."""
    skip = lines.first - first_line
    start = 0
    for _ in range(skip):
        found = body.find(b"\n", start)
        if found < 0:
            return b""
        start = found + 1
    if lines.last is None:
        return body[start:]
    end = start
    for _ in range(lines.last - lines.first + 1):
        found = body.find(b"\n", end)
        if found < 0:
            return body[start:]
        end = found + 1
    return body[start:end]
