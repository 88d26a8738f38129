"""The simulator's generator: travis-worker's parts, realistic content, reproducible, faults on request."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from travis_logs.errors import ConfigError, InvalidLogPart
from travis_logs.parts import clean, parse_message
from travis_logs.simulator.content import ContentOptions, Write
from travis_logs.simulator.cutter import CHUNK_BYTES, Part, cut_parts
from travis_logs.simulator.faults import FaultOptions
from travis_logs.simulator.job import JobOptions, SimulatedJob, build_job
from travis_logs.simulator.manifest import Manifest
from travis_logs.simulator.messages import PartMessage, PoisonMessage

MAX_BODY = 1 << 20
FAULTS = FaultOptions(duplicates=0.2, reorder_window=4, late_parts=3, late_delay_s=0.5, poison=6)


def sent_parts(job: SimulatedJob) -> list[PartMessage]:
    return [s.message for s in job.schedule if isinstance(s.message, PartMessage)]


def test_same_seed_same_job_and_other_seed_other_log():
    """A seed reproduces a job's parts and manifest record byte for byte; another seed does not."""
    # Without meta: its queued_at is the wall clock's second, which two builds may straddle.
    options = JobOptions(faults=FAULTS, meta=False)
    first, again = build_job(7, 1234, options), build_job(7, 1234, options)
    assert first.parts == again.parts
    assert first.record == again.record
    assert [s.message for s in first.schedule] == [s.message for s in again.schedule]
    assert build_job(7, 4321, options).record.sha256 != first.record.sha256


def test_faults_do_not_change_the_content():
    """Turning faults on changes how a job is sent, not the log it must become."""
    plain = build_job(8, 99, JobOptions())
    faulty = build_job(8, 99, JobOptions(faults=FAULTS))
    assert faulty.parts == plain.parts
    assert faulty.record.sha256 == plain.record.sha256


def test_parts_are_cut_as_travis_worker_cuts_them():
    """Parts are numbered from 0 without gaps, at most 1,653 bytes, the last one empty and final."""
    job = build_job(9, 5, JobOptions(content=ContentOptions(log_bytes=200_000)))
    assert [p.number for p in job.parts] == list(range(len(job.parts)))
    assert max(len(p.data) for p in job.parts) == CHUNK_BYTES  # long lines fill whole parts
    assert all(0 < len(p.data) <= CHUNK_BYTES for p in job.parts[:-1])
    assert job.parts[-1] == Part(len(job.parts) - 1, b"", job.parts[-1].at_ms, final=True)
    assert [p.final for p in job.parts].count(True) == 1


def test_output_is_flushed_every_500_ms_of_job_time():
    """What was written before a tick goes out at that tick, split at 1,653 bytes."""
    writes = [Write(0, b"a" * 100), Write(200, b"b" * 100), Write(700, b"c" * 5000)]
    parts = list(cut_parts(writes))
    assert [(p.number, len(p.data), p.at_ms) for p in parts] == [
        (0, 200, 500),
        (1, 1653, 700),
        (2, 1653, 700),
        (3, 1653, 700),
        (4, 41, 700),
        (5, 0, 700),
    ]


def test_a_part_never_ends_inside_a_utf8_character():
    """A character on the 1,653-byte boundary moves whole into the next part, so none is lost."""
    text = "é" * 1000 + "🎉" * 300
    parts = list(cut_parts([Write(0, text.encode())]))
    assert all(len(p.data) <= CHUNK_BYTES for p in parts)
    assert "".join(clean(p.data) for p in parts) == text


def test_content_looks_like_a_travis_log():
    """The log has folds, timers, colours, carriage returns, long lines, emoji and odd bytes."""
    job = build_job(10, 3, JobOptions(content=ContentOptions(log_bytes=300_000)))
    log = job.expected_log.decode()
    for marker in ("travis_fold:start:git.checkout\r\x1b[0K", "travis_fold:end:install\r\x1b[0K"):
        assert marker in log
    assert "travis_time:start:" in log and ",event=script\r\x1b[0K" in log
    assert "\x1b[32m" in log and "\r" in log.replace("\r\x1b[0K", "")
    assert any(e in log for e in ("🎉", "🚀", "✨")) and "━" in log
    assert max(len(line) for line in log.split("\n")) > 2000
    assert log.endswith("Done. Your build exited with 0.\n")
    raw = b"".join(p.data for p in job.parts)
    assert len(raw) > len(job.expected_log)  # odd bytes were sent and cleaned away


def test_amqp_bodies_parse_back_into_the_expected_log():
    """The ingest's own parser turns the messages into the parts, so the manifest is what it stores."""
    job = build_job(11, 8, JobOptions(content=ContentOptions(log_bytes=300_000)))
    messages = sent_parts(job)
    parsed = [parse_message(m.amqp_body(), MAX_BODY) for m in messages]
    assert (
        "".join(p.content for p in sorted(parsed, key=lambda p: p.number)).encode()
        == job.expected_log
    )
    encodings = [json.loads(m.amqp_body()).get("encoding") for m in messages]
    assert "base64" in encodings  # parts with bytes that are not UTF-8
    first = json.loads(messages[0].amqp_body())
    assert list(first) == ["id", "log", "number", "uuid", "final", "meta"]
    assert set(first["meta"]) == {"queued_at", "repo", "queue", "infra"}


def test_exact_part_count():
    """`parts` sets the number of parts per job exactly, the empty final one included."""
    for count in (1, 2, 40):
        job = build_job(12, 1, JobOptions(parts=count))
        assert job.record.parts == len(job.parts) == count
        assert job.parts[-1].final and job.parts[-1].data == b""


def test_faults_are_injected_as_requested():
    """Duplicates, reordering, late parts after the final one and poison all show in the stream."""
    job = build_job(13, 21, JobOptions(parts=60, faults=FAULTS))
    faults = job.record.faults
    numbers = [m.part.number for m in sent_parts(job)]
    assert len(numbers) - len(set(numbers)) == faults.duplicates > 0
    assert set(numbers) == set(range(60))
    assert faults.reordered > 0 and numbers != sorted(numbers)
    assert faults.late == 3
    final_at = numbers.index(59)
    assert len(set(numbers[final_at + 1 :]) - {59}) >= 3  # late parts come after the final one
    poison = [s.message for s in job.schedule if isinstance(s.message, PoisonMessage)]
    assert len(poison) == faults.poison == 6


def test_poison_messages_are_rejected_by_the_ingest_parser():
    """Every poison message is one the ingest refuses, so none can change a log."""
    job = build_job(14, 2, JobOptions(parts=10, faults=FaultOptions(poison=12)))
    poison = [s.message for s in job.schedule if isinstance(s.message, PoisonMessage)]
    assert len({p.reason for p in poison}) == 6
    for message in poison:
        with pytest.raises(InvalidLogPart):
            parse_message(message.body, MAX_BODY)


def test_late_parts_wait_for_their_delay():
    """Late parts are due `late_delay_s` after the final part, also at full speed."""
    options = JobOptions(parts=20, speed=0, faults=FaultOptions(late_parts=2, late_delay_s=1.5))
    job = build_job(15, 4, options)
    assert [s.at_s for s in job.schedule] == [0.0] * 18 + [1.5, 1.5]


def test_http_items_carry_base64_content():
    """Items for the HTTP part routes have travis-worker's fields, content always base64."""
    job = build_job(16, 6, JobOptions(parts=3))
    item = sent_parts(job)[0].http_item()
    assert item["@type"] == "log_part" and item["encoding"] == "base64"
    assert base64.b64decode(item["content"]) == job.parts[0].data


def test_manifest_round_trip_and_bad_manifest(tmp_path: Path):
    """A written manifest reads back equal; a broken one is a clear configuration error."""
    jobs = tuple(
        build_job(job_id, 3, JobOptions(parts=5, faults=FAULTS)).record for job_id in (1, 2)
    )
    manifest = Manifest(3, jobs)
    path = tmp_path / "manifest.json"
    manifest.write(path)
    assert Manifest.read(path) == manifest
    path.write_text('{"seed": 1, "jobs": [{"job_id": 1}]}')
    with pytest.raises(ConfigError, match="not a simulation manifest"):
        Manifest.read(path)


def test_generator_builds_a_log_of_the_size_asked_for():
    """Benchmarks use the generator as their producer: `log_bytes` sets the log's size."""
    job = build_job(17, 1, JobOptions(content=ContentOptions(log_bytes=4_000_000)))
    assert 4_000_000 < job.record.bytes < 4_100_000
