"""The simulator's own rule for what a stored part must read (reference §8.1).

The simulator is the oracle that `verify-archives` compares archives with, so it does not
borrow the cleaning code under test: this one keeps the well-formed UTF-8 sequences of
RFC 3629 (table 3-7 of the Unicode standard) and drops every other byte, NUL included.
"""

from __future__ import annotations

import re

_WELL_FORMED = re.compile(
    rb"[\x01-\x7f]"
    rb"|[\xc2-\xdf][\x80-\xbf]"
    rb"|\xe0[\xa0-\xbf][\x80-\xbf]"
    rb"|[\xe1-\xec\xee\xef][\x80-\xbf]{2}"
    rb"|\xed[\x80-\x9f][\x80-\xbf]"
    rb"|\xf0[\x90-\xbf][\x80-\xbf]{2}"
    rb"|[\xf1-\xf3][\x80-\xbf]{3}"
    rb"|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)


def expected_text(raw: bytes) -> str:
    """`raw` as travis-logs must store it: ill-formed sequences and NUL bytes left out."""
    return b"".join(_WELL_FORMED.findall(raw)).decode("utf-8")
