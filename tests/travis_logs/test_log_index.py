"""The log index: parts, line starts, folds and timers found in a log's bytes; no service."""

from __future__ import annotations

import json
import random

from travis_logs.log_index import (
    LINE_STEP,
    IndexBuilder,
    LogIndex,
    build_index,
    line_checkpoint,
    line_span,
    line_starts,
    markers,
)
from travis_logs.simulator.content import ContentOptions, job_output

CLEAR = b"\r\x1b[0K"


def test_parts_are_laid_end_to_end_in_number_order_with_their_arrival() -> None:
    index = build_index(b"aaabbcccc", numbers=[3, 1, 2], sizes=[4, 3, 2], arrivals=[9500, 9000])
    assert [(p.number, p.offset, p.size, p.arrived_ms) for p in index.parts] == [
        (1, 0, 3, 9000),
        (2, 3, 2, None),
        (3, 5, 4, 9500),
    ]
    assert index.to_json()["parts"] == {
        "number": [1, 2, 3],
        "offset": [0, 3, 5],
        "size": [3, 2, 4],
        "arrived_from": 9000,
        "arrived_ms": [0, None, 500],
    }


def test_line_starts_every_step_lines() -> None:
    body = b"".join(b"line %d\n" % n for n in range(1, 11))  # 10 lines
    starts = line_starts(body, 3)
    assert [body[o:].split(b"\n", 1)[0] for o in starts] == [
        b"line 1",
        b"line 4",
        b"line 7",
        b"line 10",
    ]
    index = build_index(body, line_step=3).to_json()
    assert index["lines"] == 10
    assert line_checkpoint(index, 6) == (4, starts[1])
    assert line_checkpoint(index, 99) == (10, starts[3])


def test_folds_nest_and_an_unclosed_fold_stays_open() -> None:
    body = (
        b"travis_fold:start:outer" + CLEAR + b"a\n"
        b"travis_fold:start:inner" + CLEAR + b"b\n"
        b"travis_fold:end:inner" + CLEAR + b"travis_fold:end:outer" + CLEAR + b"\n"
        b"travis_fold:start:cut" + CLEAR + b"c\n"
    )
    folds, _ = markers(body)
    assert [(f.name, f.line, f.end_line) for f in folds] == [
        ("outer", 1, 3),
        ("inner", 2, 3),
        ("cut", 4, None),
    ]
    assert body[folds[1].offset :].startswith(b"travis_fold:start:inner")
    assert folds[1].end_offset is not None
    assert body[folds[1].end_offset :].startswith(b"travis_fold:end:inner")


def test_timers_carry_durations_and_a_mismatched_end_is_skipped() -> None:
    body = (
        b"travis_time:start:0a1b" + CLEAR + b"$ make\nok\n"
        b"travis_time:end:ffff:start=1,finish=2,duration=1" + CLEAR + b"\n"
        b"travis_time:end:0a1b:start=100,finish=350,duration=250,event=script" + CLEAR + b"\n"
    )
    _, timers = markers(body)
    assert len(timers) == 1
    timer = timers[0]
    assert (timer.id, timer.line, timer.end_line) == ("0a1b", 1, 4)
    assert (timer.start, timer.finish, timer.duration, timer.extra) == (
        100,
        350,
        250,
        {"event": "script"},
    )


def test_a_simulated_job_log_indexes_every_fold_and_command() -> None:
    body = b"".join(
        w.data for w in job_output(random.Random(7), ContentOptions(log_bytes=64 * 1024))
    )
    index = build_index(body, numbers=[0], sizes=[len(body)], line_step=100)
    names = [f.name for f in index.folds]
    assert names == ["worker_info", "system_info", "git.checkout", "install"]
    assert all(f.end_line is not None and f.end_line >= f.line for f in index.folds)
    assert [t.extra["event"] for t in index.timers] == ["checkout", "setup", "install", "script"]
    assert all(t.duration == t.finish - t.start for t in index.timers if t.start and t.finish)
    encoded = json.dumps(index.to_json())
    assert len(encoded) < len(body) // 10  # small beside the log, and no text of it
    assert "pytest" not in encoded


def test_line_span_covers_the_lines_from_the_indexed_starts_around_them() -> None:
    body = b"".join(b"line %d\n" % n for n in range(1, 11))
    index = build_index(body, line_step=3).to_json()
    starts = index["line_starts"]  # lines 1, 4, 7, 10
    assert line_span(index, 5, 6) == (4, starts[1], starts[2] - 1)
    assert line_span(index, 5, 7) == (4, starts[1], starts[3] - 1)
    assert line_span(index, 8, None) == (7, starts[2], len(body) - 1)
    line, start, end = line_span(index, 2, 3)
    assert body[start : end + 1] == b"line 1\nline 2\nline 3\n" and line == 1


def chunked(body: bytes, cuts: list[int], line_step: int = LINE_STEP) -> LogIndex:
    """The index of `body` fed to an IndexBuilder in pieces cut at `cuts`."""
    builder = IndexBuilder(line_step)
    edges = [0, *sorted(cuts), len(body)]
    for start, end in zip(edges, edges[1:], strict=False):
        builder.feed(body[start:end])
    return builder.finish([0], [len(body)])


def test_a_log_fed_in_chunks_indexes_as_the_whole_whatever_the_cuts() -> None:
    """Markers, folds, timers and line starts cut across chunks at random places."""
    rng = random.Random(11)
    body = b"".join(w.data for w in job_output(rng, ContentOptions(log_bytes=96 * 1024)))
    whole = build_index(body, [0], [len(body)], line_step=50)
    for size in (1, 7, 480, 481, 482, 4096):
        cuts = list(range(size, len(body), size))
        assert chunked(body, cuts, line_step=50) == whole
    for _ in range(20):
        cuts = rng.sample(range(1, len(body)), rng.randint(1, 200))
        assert chunked(body, cuts, line_step=50) == whole


def test_a_longest_marker_cut_at_every_byte_is_found_whole() -> None:
    """A timer end of the greatest length the index reads, split at each of its bytes."""
    values = ("start=1,finish=3,duration=2," + "k=" + "v" * 369)[:400].encode()
    longest = b"travis_time:end:" + b"a" * 64 + b":" + values
    body = b"x\ntravis_time:start:" + b"a" * 64 + CLEAR + b"y\n" + longest + CLEAR + b"\n"
    whole = build_index(body, [0], [len(body)])
    (timer,) = whole.timers
    assert timer.duration == 2 and body[timer.end_offset :].startswith(longest)
    start = body.index(longest)
    for cut in range(start, start + len(longest) + 1):
        assert chunked(body, [cut]) == whole
