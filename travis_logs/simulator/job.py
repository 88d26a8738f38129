"""One simulated job: its parts, the log they must aggregate to, and when to send what."""

from __future__ import annotations

import hashlib
import itertools
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from travis_logs.simulator.cleaning import expected_text
from travis_logs.simulator.content import ContentOptions, job_output
from travis_logs.simulator.cutter import CHUNK_BYTES, Part, cut_parts
from travis_logs.simulator.faults import FaultOptions, Scheduled, inject
from travis_logs.simulator.manifest import JobRecord
from travis_logs.simulator.messages import PartMessage


@dataclass(frozen=True)
class JobOptions:
    """How each job looks and is sent."""

    content: ContentOptions = field(default_factory=ContentOptions)
    parts: int | None = None  # exact number of parts, the empty final one included
    speed: float = 1.0  # 1 is real time, 10 ten times faster, 0 as fast as possible
    meta: bool = True  # "meta" on the first part, as later travis-workers send it
    faults: FaultOptions = field(default_factory=FaultOptions)


@dataclass(frozen=True)
class SimulatedJob:
    """A job ready to send: `schedule` is in send order, faults included."""

    job_id: int
    parts: tuple[Part, ...]
    schedule: tuple[Scheduled, ...]
    record: JobRecord

    @property
    def expected_log(self) -> bytes:
        return expected_log(self.parts)


def build_job(job_id: int, seed: int, options: JobOptions) -> SimulatedJob:
    """Generate one job; the same seed and job id always give the same parts."""
    # Separate streams, so that turning faults on does not change the content.
    parts = tuple(job_parts(random.Random(f"{seed}/{job_id}/content"), options))
    rng = random.Random(f"{seed}/{job_id}/faults")
    messages = _messages(job_id, parts, rng, options.meta)
    schedule = [Scheduled(_at_s(m.part.at_ms, options.speed), m) for m in messages]
    schedule, faults = inject(schedule, rng, options.faults)
    log = expected_log(parts)
    record = JobRecord(job_id, len(parts), len(log), hashlib.sha256(log).hexdigest(), faults)
    return SimulatedJob(job_id, parts, tuple(schedule), record)


def job_parts(rng: random.Random, options: JobOptions) -> Iterator[Part]:
    """The parts travis-worker would send for one job's output."""
    if options.parts is None:
        yield from cut_parts(job_output(rng, options.content))
        return
    if options.parts < 1:
        raise ValueError(f"a job has at least one part (the final one), not {options.parts}")
    # Enough output for the requested parts whatever the timing; the rest is never generated.
    content = replace(options.content, log_bytes=options.parts * CHUNK_BYTES + 1024)
    wanted = options.parts - 1
    cut = [p for p in itertools.islice(cut_parts(job_output(rng, content)), wanted) if not p.final]
    last_ms = cut[-1].at_ms if cut else 0
    yield from cut
    yield Part(len(cut), b"", last_ms, final=True)


def expected_log(parts: Sequence[Part]) -> bytes:
    """The log the system must archive: each part cleaned, in part-number order."""
    ordered = sorted(parts, key=lambda p: p.number)
    return "".join(expected_text(p.data) for p in ordered).encode("utf-8")


def _messages(
    job_id: int, parts: Sequence[Part], rng: random.Random, meta: bool
) -> list[PartMessage]:
    request = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    first_meta = _meta(job_id) if meta else None
    return [PartMessage(job_id, p, request, first_meta if p.number == 0 else None) for p in parts]


def _meta(job_id: int) -> dict[str, Any]:
    queued_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return {
        "queued_at": queued_at,
        "repo": "travis-ci/simulated",
        "queue": "builds.simulated",
        "infra": "simulated",
    }


def _at_s(at_ms: int, speed: float) -> float:
    return at_ms / 1000 / speed if speed > 0 else 0.0
