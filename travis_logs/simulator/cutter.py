"""travis-worker's log writer: buffer the output, flush it every tick, in parts of 1,653 bytes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from travis_logs.simulator.content import Write

CHUNK_BYTES = 1653  # travis-worker's LogChunkSize
TICK_MS = 500  # travis-worker's LogWriterTick


@dataclass(frozen=True)
class Part:
    """One log part as the worker sends it: numbered from 0, the last one empty and final."""

    number: int
    data: bytes
    at_ms: int
    final: bool = False


def cut_parts(
    writes: Iterable[Write], chunk_bytes: int = CHUNK_BYTES, tick_ms: int = TICK_MS
) -> Iterator[Part]:
    """Flush the buffered output at every tick of job time, then close with an empty final part."""
    buffer = bytearray()
    number = 0
    next_tick = tick_ms
    last_ms = 0
    for write in writes:
        if write.at_ms >= next_tick:
            for part in _drain(buffer, number, next_tick, chunk_bytes):
                number += 1
                yield part
            # Ticks with an empty buffer send nothing; jump to the one after this write.
            next_tick = (write.at_ms // tick_ms + 1) * tick_ms
        buffer += write.data
        last_ms = write.at_ms
    for part in _drain(buffer, number, last_ms, chunk_bytes):
        number += 1
        yield part
    yield Part(number, b"", last_ms, final=True)


def _drain(buffer: bytearray, number: int, at_ms: int, chunk_bytes: int) -> Iterator[Part]:
    start = 0
    while start < len(buffer):
        end = _cut_point(buffer, start, chunk_bytes)
        yield Part(number, bytes(buffer[start:end]), at_ms)
        number += 1
        start = end
    buffer.clear()


def _cut_point(buffer: bytearray, start: int, chunk_bytes: int) -> int:
    """Where a part ends: at most `chunk_bytes` on, and never inside a UTF-8 character.

    The receiving side cleans each part on its own, so a character split across two parts
    would vanish from the log (travis-worker splits them, and its JSON encoder turns the
    halves into U+FFFD); a simulated log keeps every character it printed.
    """
    end = start + chunk_bytes
    if end >= len(buffer):
        return len(buffer)
    for candidate in range(end, max(start, end - 4), -1):
        if buffer[candidate] & 0xC0 != 0x80:  # not a continuation byte: a character starts here
            return candidate
    return end  # not UTF-8 here anyway
