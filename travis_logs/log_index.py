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
# The longest match of _MARKER: "travis_time:end:" (16), an id (64), ":" and its values (400).
_MARKER_MAX = 16 + 64 + 1 + 400
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
    builder = IndexBuilder(line_step)
    builder.feed(body)
    return builder.finish(numbers, sizes, arrivals)


class IndexBuilder:
    """The index of a log fed in chunks of any size, holding none of its text beyond one
    marker's length: the same index as `build_index` of the chunks joined."""

    def __init__(self, line_step: int = LINE_STEP) -> None:
        self._lines = _LineScan(line_step)
        self._markers = _MarkerScan()

    def feed(self, chunk: bytes) -> None:
        self._lines.feed(chunk)
        self._markers.feed(chunk)

    def finish(
        self,
        numbers: Sequence[int] = (),
        sizes: Sequence[int] = (),
        arrivals: Sequence[int | None] = (),
    ) -> LogIndex:
        """The index of everything fed, whose parts are these (see `build_index`)."""
        folds, timers = self._markers.finish()
        size = self._lines.size
        return LogIndex(
            version=INDEX_VERSION,
            size=size,
            lines=self._lines.count(),
            line_step=self._lines.step,
            line_starts=self._lines.starts(),
            parts=part_entries(size, numbers, sizes, arrivals),
            folds=folds,
            timers=timers,
        )


def line_count(body: bytes) -> int:
    """Lines as a reader counts them: a last line without its newline counts too."""
    scan = _LineScan(LINE_STEP)
    scan.feed(body)
    return scan.count()


def line_starts(body: bytes, step: int) -> list[int]:
    """The byte offsets of lines 1, 1 + step, 1 + 2 * step ... (those that exist)."""
    scan = _LineScan(step)
    scan.feed(body)
    return scan.starts()


class _LineScan:
    """Size, newlines and every `step`-th line start of the bytes fed so far."""

    def __init__(self, step: int) -> None:
        if step < 1:
            raise ValueError("line_step must be at least 1")
        self.step = step
        self.size = 0
        self._newlines = 0
        self._starts: list[int] = []
        self._ends_line = False

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        if not self.size:
            self._starts.append(0)
        at = chunk.find(b"\n")
        while at >= 0:
            self._newlines += 1
            if self._newlines % self.step == 0:
                self._starts.append(self.size + at + 1)
            at = chunk.find(b"\n", at + 1)
        self._ends_line = chunk.endswith(b"\n")
        self.size += len(chunk)

    def count(self) -> int:
        if not self.size:
            return 0
        return self._newlines + (0 if self._ends_line else 1)

    def starts(self) -> list[int]:
        """A newline that ends the log starts no line."""
        return [start for start in self._starts if start < self.size]


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
    scan = _MarkerScan()
    scan.feed(body)
    return scan.finish()


class _MarkerScan:
    """Fold and timer markers of bytes fed in chunks, as one scan of them joined would find
    them: a match that starts `_MARKER_MAX` bytes or more before the end of what was fed is
    whole (a marker is never longer), so only the bytes after that wait for the next chunk."""

    def __init__(self) -> None:
        self.folds: list[Fold] = []
        self._open_folds: dict[str, list[Fold]] = {}
        self.timers: list[Timer] = []
        self._open_timers: list[tuple[str, int, int]] = []
        self._pending = b""  # bytes not scanned to the end yet, from offset `_base`
        self._base = 0
        self._line = 1  # the line at offset `_base`

    def feed(self, chunk: bytes, *, final: bool = False) -> None:
        buf = self._pending + chunk if self._pending else chunk
        whole_before = len(buf) if final else len(buf) - _MARKER_MAX
        resume, counted = max(0, whole_before), 0
        for match in _MARKER.finditer(buf):
            if match.start() >= whole_before:
                break  # it may go on in the next chunk: scanned again there
            self._line += buf.count(b"\n", counted, match.start())
            counted = match.start()
            self._found(match, self._base + counted)
            resume = max(resume, match.end())
        self._line += buf.count(b"\n", counted, resume)
        self._pending = buf[resume:]
        self._base += resume

    def finish(self) -> tuple[list[Fold], list[Timer]]:
        self.feed(b"", final=True)
        return self.folds, sorted(self.timers, key=lambda t: t.offset)

    def _found(self, match: re.Match[bytes], where: int) -> None:
        kind, name, started, ended, info = match.groups()
        line = self._line
        if kind == b"start":
            fold = Fold(name.decode(), where, line)
            self.folds.append(fold)
            self._open_folds.setdefault(fold.name, []).append(fold)
        elif kind == b"end":
            stack = self._open_folds.get(name.decode())
            if stack:
                closed = stack.pop()
                closed.end_offset, closed.end_line = where, line
        elif started is not None:
            self._open_timers.append((started.decode(), where, line))
        elif self._open_timers and self._open_timers[-1][0] == ended.decode():
            timer_id, offset, first = self._open_timers.pop()
            self.timers.append(_timer(timer_id, offset, first, where, line, info))


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
