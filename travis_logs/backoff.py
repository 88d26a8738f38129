"""Doubling delays for the batch consumer's loops; a retry of one call uses stamina instead
(`stamina.retry_context`: capped, jittered exponential backoff)."""

from __future__ import annotations

from collections.abc import Iterator


def backoff(first_s: float, cap_s: float) -> Iterator[float]:
    """Delays in seconds: `first_s`, doubling with each retry, never above `cap_s`; endless."""
    delay = first_s
    while True:
        yield delay
        delay = min(delay * 2, cap_s)
