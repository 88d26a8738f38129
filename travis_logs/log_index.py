"""A log's shape as a small JSON-able index, built from its text and its part index; pure.

The index never holds log text: each part's number, byte offset, size and arrival time
(where known); the byte offset of every `line_step`-th line start, so a reader can fetch
lines by byte range; travis fold sections and `travis_time` markers with their durations.
Markers are found as the original system writes them (travis_logs/simulator/content.py):
`travis_fold:start:NAME` / `travis_fold:end:NAME` and `travis_time:start:ID` /
`travis_time:end:ID:start=..,finish=..,duration=..[,k=v...]`, each followed by `\\r\\x1b[0K`.
A time end whose id is not the innermost open one is skipped, as travis' timing service does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

INDEX_VERSION = 1
LINE_STEP = 1000
# Names and values are bounded: an index stays small whatever a log's markers say.
_MARKER = re.compile(
    rb"travis_fold:(start|end):([A-Za-z0-9_.\-]{1,120})"
    rb"|travis_time:start:([0-9A-Fa-f]{1,64})"
    rb"|travis_time:end:([0-9A-Fa-f]{1,64}):([A-Za-z0-9_=,.\-]{0,400})"
)
_EXTRA_KEYS = 8


@dataclass(frozen=True)
class Part:
    number: int
    offset: int
    size: int
    arrived_ms: int | None = None  # Unix time in milliseconds, where known


@dataclass
class Fold:
    """A fold section: where its start and end markers are (end None: never closed)."""

    name: str
    offset: int
    line: int
    end_offset: int | None = None
    end_line: int | None = None


@dataclass
class Timer:
    """A `travis_time` pair; the times are nanoseconds as the markers give them."""

    id: str
    offset: int
    line: int
    end_offset: int
    end_line: int
    start: int | None = None
    finish: int | None = None
    duration: int | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class LogIndex:
    version: int
    size: int
    lines: int
    line_step: int
    line_starts: list[int]
    parts: list[Part]
    folds: list[Fold]
    timers: list[Timer]

    def to_json(self) -> dict[str, Any]:
        """As JSON: parts by column, arrivals in ms after the first (`arrived_from`), so a
        log of many small parts keeps a small index."""
        shape = asdict(self)
        known = [p.arrived_ms for p in self.parts if p.arrived_ms is not None]
        base = min(known) if known else None
        shape["parts"] = {
            "number": [p.number for p in self.parts],
            "offset": [p.offset for p in self.parts],
            "size": [p.size for p in self.parts],
            "arrived_from": base,
            "arrived_ms": [
                None if p.arrived_ms is None or base is None else p.arrived_ms - base
                for p in self.parts
            ],
        }
        return shape


def build_index(
    body: bytes,
    numbers: Sequence[int] = (),
    sizes: Sequence[int] = (),
    arrivals: Sequence[int | None] = (),
    line_step: int = LINE_STEP,
) -> LogIndex:
    """The index of `body`, whose parts (by number, with their sizes and arrival times in
    Unix milliseconds) make it up."""
    folds, timers = markers(body)
    return LogIndex(
        version=INDEX_VERSION,
        size=len(body),
        lines=line_count(body),
        line_step=line_step,
        line_starts=line_starts(body, line_step),
        parts=part_entries(len(body), numbers, sizes, arrivals),
        folds=folds,
        timers=timers,
    )


def line_count(body: bytes) -> int:
    """Lines as a reader counts them: a last line without its newline counts too."""
    if not body:
        return 0
    return body.count(b"\n") + (0 if body.endswith(b"\n") else 1)


def line_starts(body: bytes, step: int) -> list[int]:
    """The byte offsets of lines 1, 1 + step, 1 + 2 * step ... (those that exist)."""
    if step < 1:
        raise ValueError("line_step must be at least 1")
    starts = [0] if body else []
    at, seen = 0, 0
    while (found := body.find(b"\n", at)) >= 0:
        at, seen = found + 1, seen + 1
        if seen % step == 0 and at < len(body):
            starts.append(at)
    return starts


def part_entries(
    size: int, numbers: Sequence[int], sizes: Sequence[int], arrivals: Sequence[int | None]
) -> list[Part]:
    """Parts in number order, laid end to end; a text longer than its parts (a replaced
    head) puts them at its end, as the gap offsets of `travis_logs.completeness` do."""
    offset = max(0, size - sum(sizes))
    known = list(arrivals) + [None] * (len(numbers) - len(arrivals))
    entries = []
    for number, part_size, arrived in sorted(zip(numbers, sizes, known, strict=True)):
        entries.append(Part(number, offset, part_size, arrived))
        offset += part_size
    return entries


def markers(body: bytes) -> tuple[list[Fold], list[Timer]]:
    """The fold sections and timers of `body`, in the order they start."""
    folds: list[Fold] = []
    open_folds: dict[str, list[Fold]] = {}
    timers: list[Timer] = []
    open_timers: list[tuple[str, int, int]] = []
    line, counted = 1, 0
    for match in _MARKER.finditer(body):
        line += body.count(b"\n", counted, match.start())
        counted = match.start()
        where = match.start()
        kind, name, started, ended, info = match.groups()
        if kind == b"start":
            fold = Fold(name.decode(), where, line)
            folds.append(fold)
            open_folds.setdefault(fold.name, []).append(fold)
        elif kind == b"end":
            stack = open_folds.get(name.decode())
            if stack:
                closed = stack.pop()
                closed.end_offset, closed.end_line = where, line
        elif started is not None:
            open_timers.append((started.decode(), where, line))
        elif open_timers and open_timers[-1][0] == ended.decode():
            timer_id, offset, first = open_timers.pop()
            timers.append(_timer(timer_id, offset, first, where, line, info))
    timers.sort(key=lambda t: t.offset)
    return folds, timers


def _timer(timer_id: str, offset: int, line: int, end: int, end_line: int, info: bytes) -> Timer:
    timer = Timer(timer_id, offset, line, end, end_line)
    for pair in info.decode().split(","):
        key, sep, value = pair.partition("=")
        if not sep:
            continue  # pairs without '=' are skipped
        if key in ("start", "finish", "duration"):
            setattr(timer, key, int(value) if value.isdigit() and len(value) < 25 else None)
        elif len(timer.extra) < _EXTRA_KEYS:
            timer.extra[key] = value
    return timer


def line_checkpoint(index: dict[str, Any], line: int) -> tuple[int, int]:
    """The nearest indexed line start at or before `line` (1-based): (its line, offset)."""
    step = int(index["line_step"])
    starts: list[int] = index["line_starts"]
    if not starts:
        return 1, 0
    slot = min((line - 1) // step, len(starts) - 1)
    return slot * step + 1, int(starts[slot])


def line_span(index: dict[str, Any], first: int, last: int | None) -> tuple[int, int, int]:
    """Bytes that hold lines `first`..`last` (None: to the end) of the indexed log, from
    the nearest indexed line start: (the line it starts, first byte, last byte)."""
    line, start = line_checkpoint(index, first)
    size, step = int(index["size"]), int(index["line_step"])
    starts: list[int] = index["line_starts"]
    after = len(starts) if last is None else -(-last // step)  # the start past `last`
    end = int(starts[after]) - 1 if after < len(starts) else size - 1
    return line, start, end
