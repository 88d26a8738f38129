"""Many simulated jobs at once, each sent at its own pace, recorded as they finish."""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from travis_logs.simulator.faults import Scheduled
from travis_logs.simulator.job import JobOptions, SimulatedJob, build_job
from travis_logs.simulator.manifest import JobRecord, Manifest
from travis_logs.simulator.messages import Message
from travis_logs.simulator.sinks import PartSink


def new_seed() -> int:
    return secrets.randbelow(2**32)


def new_start_job_id() -> int:
    """Milliseconds since the epoch: runs a while apart never reuse a job id."""
    return int(time.time() * 1000)


@dataclass(frozen=True)
class SimulationOptions:
    """A run: how many jobs, from which id, how many at once, and what each looks like."""

    jobs: int = 1
    concurrency: int = 10
    seed: int = field(default_factory=new_seed)
    start_job_id: int = field(default_factory=new_start_job_id)
    job: JobOptions = field(default_factory=JobOptions)

    @property
    def job_ids(self) -> range:
        return range(self.start_job_id, self.start_job_id + self.jobs)


class Simulation:
    """One run; `records` holds the jobs sent completely so far (also when it is cancelled)."""

    def __init__(self, options: SimulationOptions, sink: PartSink) -> None:
        self.options = options
        self.records: list[JobRecord] = []
        self._sink = sink
        self._slots = asyncio.Semaphore(options.concurrency)

    async def run(self) -> Manifest:
        async with asyncio.TaskGroup() as group:
            for job_id in self.options.job_ids:
                group.create_task(self._one(job_id))
        return self.manifest()

    def manifest(self) -> Manifest:
        return Manifest(self.options.seed, tuple(sorted(self.records, key=lambda r: r.job_id)))

    async def _one(self, job_id: int) -> None:
        async with self._slots:
            job = build_job(job_id, self.options.seed, self.options.job)
            await play(job, self._sink)
            self.records.append(job.record)


async def play(job: SimulatedJob, sink: PartSink) -> None:
    """Send a job's schedule, waiting for each message's time (none at speed 0)."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for at_s, batch in batches(job.schedule):
        delay = start + at_s - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await sink.send(batch)


def batches(schedule: Sequence[Scheduled]) -> Iterator[tuple[float, list[Message]]]:
    """Consecutive messages due at the same moment: one worker flush, one HTTP request."""
    for at_s, group in itertools.groupby(schedule, key=lambda s: s.at_s):
        yield at_s, [s.message for s in group]
