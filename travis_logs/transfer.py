"""Deadlines and progress for S3 requests, so that a stalled connection fails instead of hanging.

A connection that S3 (or a load balancer in front of it) stops answering without closing it
is invisible to botocore's socket timeouts in one place that matters: an upload sent with
`Expect: 100-continue` waits for the `100 Continue` with no timeout at all. So every request
runs under a deadline of its own (a base plus time for its body at a minimum rate), and a
request past it is cancelled, which closes its connection: the next attempt opens a fresh one.

`Progress` records what a transfer has done (its phase, requests made, body bytes moved),
so that heartbeats can report progress rather than time: a transfer that stops moving stops
heartbeating.

What went wrong with a request's attempts (botocore retries a refused connection a few times
inside one call) is kept while the request runs, so that a request abandoned at its deadline
says why: "could not connect", not only "did not finish".
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterable, AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from travis_logs.errors import S3Timeout
from travis_logs.settings import Settings

# S3 refuses multipart parts under 5 MiB (all but the last).
MIN_PART_BYTES = 5 << 20


@dataclass(frozen=True)
class TransferLimits:
    """How long one S3 request may take: `request_s` plus its body at `min_bytes_per_s`;
    and how large one uploaded piece is (a larger object goes up in parts of this size)."""

    request_s: float = 10.0
    min_bytes_per_s: int = 1 << 20
    part_bytes: int = 8 << 20

    @classmethod
    def from_settings(cls, settings: Settings) -> TransferLimits:
        return cls(
            settings.s3_request_timeout_s, settings.s3_min_bytes_per_s, settings.s3_part_bytes
        )

    def seconds(self, body_bytes: int = 0) -> float:
        return self.request_s + body_bytes / self.min_bytes_per_s


@dataclass(frozen=True)
class ProgressMark:
    """One moment of a transfer; two equal marks mean nothing moved in between."""

    phase: str
    requests: int
    bytes: int


class Progress:
    """What a transfer has done so far; S3 calls advance it, heartbeats read it."""

    def __init__(self) -> None:
        self.phase = "starting"
        self.requests = 0
        self.bytes = 0

    def begin(self, phase: str) -> None:
        """A new request starts (a head, put or get, or reading a response body)."""
        self.phase = phase
        self.requests += 1

    def moved(self, total_bytes: int) -> None:
        self.bytes = total_bytes

    def mark(self) -> ProgressMark:
        return ProgressMark(self.phase, self.requests, self.bytes)


class CountingBody(io.BytesIO):
    """An upload body that reports how far the HTTP client has read it (bytes handed on),
    counted from `offset` (the bytes of the object sent before this body: earlier parts)."""

    def __init__(self, body: bytes, progress: Progress, offset: int = 0) -> None:
        super().__init__(body)  # shares `body`'s buffer until written to: no copy
        self._progress = progress
        self._offset = offset

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self._progress.moved(self._offset + self.tell())
        return chunk


class Tally:
    """The size and SHA-256 of bytes seen one piece at a time."""

    def __init__(self) -> None:
        self.size = 0
        self._hash = hashlib.sha256()

    @classmethod
    def of(cls, body: bytes) -> Tally:
        tally = cls()
        tally.update(body)
        return tally

    def update(self, piece: bytes) -> None:
        self._hash.update(piece)
        self.size += len(piece)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


async def pieces(chunks: AsyncIterable[bytes], size: int) -> AsyncIterator[bytes]:
    """`chunks` regrouped into pieces of exactly `size` bytes, the last one shorter (never
    empty): holds at most one piece and one chunk."""
    if size < 1:
        raise ValueError("a piece holds at least one byte")
    held = bytearray()
    async for chunk in chunks:
        held += chunk
        while len(held) >= size:
            with memoryview(held) as view:
                piece = bytes(view[:size])
            del held[:size]
            yield piece
    if held:
        yield bytes(held)


# An attempt's error is cut to this many characters (it names the endpoint URL).
_ERROR_CHARS = 300


@dataclass
class _Attempts:
    """The failed attempts of the request in progress (botocore's own retries)."""

    errors: list[str] = field(default_factory=list)


_CURRENT: ContextVar[_Attempts | None] = ContextVar("s3_request_attempts", default=None)


def record_failed_attempt(**kwargs: Any) -> None:
    """botocore's `needs-retry` event: keep why an attempt failed; never decides a retry."""
    attempts = _CURRENT.get()
    if attempts is None:
        return
    caught = kwargs.get("caught_exception")
    response = kwargs.get("response")
    if caught is not None:
        attempts.errors.append(str(caught)[:_ERROR_CHARS])
    elif response is not None and response[0].status_code >= 500:
        code = response[1].get("Error", {}).get("Code", "")
        attempts.errors.append(f"HTTP {response[0].status_code} {code}"[:_ERROR_CHARS])


@asynccontextmanager
async def deadline(what: str, seconds: float) -> AsyncIterator[None]:
    """Cancel the block after `seconds` and raise S3Timeout naming `what` and its last error."""
    attempts = _Attempts()
    token = _CURRENT.set(attempts)
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        # Without the cancelled request's chain of tracebacks (botocore, aiohttp), which
        # makes the failure too large for Temporal to keep and hides this message.
        why = f"S3 did not finish within {seconds:.1f} s"
        if attempts.errors:
            n = len(attempts.errors)
            why += f" ({n} failed attempt{'s' if n > 1 else ''}, last: {attempts.errors[-1]})"
        raise S3Timeout(f"{what}: {why}") from None
    finally:
        _CURRENT.reset(token)
