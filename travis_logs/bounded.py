"""Values from outside, cut to a stated length before they enter a log line, header or error.

A message, request or header can carry megabytes where a few bytes were expected; copied
whole into a dead-letter header it makes the frame too large for the broker (which then
closes the connection), and into a log line or an error it floods both. Every such copy goes
through `bounded`, which keeps the first `limit` bytes of UTF-8 and names the original length.
"""

from __future__ import annotations

from collections.abc import Callable

# Bytes kept of one value from outside; enough for any id, number, token prefix or reason.
LIMIT = 200


def bounded(value: object, limit: int = LIMIT) -> str:
    """`value` (str() of it unless bytes or str) cut to `limit` bytes of UTF-8 when longer.

    A cut value ends with `… (N bytes)`, N the original length, so a reader knows it was cut
    and by how much. The result is always valid UTF-8: invalid bytes and lone surrogates are
    replaced.
    """
    if isinstance(value, bytes | bytearray):
        size = len(value)
        if size <= limit:
            return bytes(value).decode("utf-8", errors="replace")
        head = bytes(value[:limit]).decode("utf-8", errors="ignore")
        return f"{head}… ({size} bytes)"
    text = value if isinstance(value, str) else _text(value)
    if len(text) <= limit and text.isascii():
        return text
    # "replace": a lone surrogate (from a JSON escape) could not be encoded by the next step.
    raw = text.encode("utf-8", errors="replace")
    if len(raw) <= limit:
        return raw.decode("utf-8")
    # Cut on a character boundary: "ignore" drops a sequence split by the cut.
    return f"{raw[:limit].decode('utf-8', errors='ignore')}… ({len(raw)} bytes)"


def bounded_repr(value: object, limit: int = LIMIT) -> str:
    """`repr(value)` cut the same way, for values whose type the reader should see."""
    if isinstance(value, str | bytes) and len(value) > limit:
        # Not the repr of a megabyte string only to cut it: the repr of its head.
        cut = repr(value[:limit]).encode("utf-8", errors="replace")[:limit]
        head = cut.decode("utf-8", errors="ignore")
        return f"{head}… ({len(value)} {'characters' if isinstance(value, str) else 'bytes'})"
    return bounded(_text(value, repr), limit)


def _text(value: object, show: Callable[[object], str] = str) -> str:
    try:
        return show(value)
    except ValueError:  # an int of more digits than Python converts (sys.int_info)
        return f"<{type(value).__name__} too large to show>"
