"""The fault rounds: what each does to the running system, and how a round is run and judged."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import asyncpg
import httpx
from temporalio.client import Client

from bench.faultkit.oracle import Truth, Verdict, archived, judge, running_workflows
from bench.faultkit.publisher import RetryingSink
from bench.faultkit.s3proxy import BLACKHOLE, CORRUPT, REFUSE, RELAY
from bench.faultkit.stack import AUTH_TOKEN, PROCESSES, Stack
from travis_logs.simulator.content import ContentOptions
from travis_logs.simulator.cutter import Part
from travis_logs.simulator.faults import FaultOptions
from travis_logs.simulator.job import JobOptions, build_job
from travis_logs.simulator.manifest import JobRecord, Manifest
from travis_logs.simulator.messages import PartMessage
from travis_logs.simulator.runner import Simulation, SimulationOptions

Fault = Callable[[Stack], Awaitable[None]]
# What the simulator's --faults preset sends: re-deliveries, reordering, late parts, poison.
STREAM_FAULTS = FaultOptions(
    duplicates=0.1, reorder_window=4, late_parts=2, late_delay_s=1.0, poison=2
)
S3_FAULT_S = 30.0


@dataclass(frozen=True)
class Load:
    """The simulated traffic of a round."""

    jobs: int = 100
    log_bytes: int = 24 * 1024
    speed: float = 1.0
    fault_after_s: float = 4.0  # into the stream: the fault hits jobs mid-way
    settle_timeout_s: float = 300.0


@dataclass(frozen=True)
class Round:
    name: str
    fault: Fault
    combined: bool = False
    late: bool = False  # late and divergent parts after every log was purged
    archive_target_s: float | None = None  # every log archived this soon after the fault ends

    @property
    def target_s(self) -> float:
        return 120.0 if self.combined else 60.0


@dataclass
class Outcome:
    name: str
    verdict: Verdict
    fault_to_settled_s: float | None
    recovery_to_settled_s: float | None
    recovery_to_archived_s: float | None  # every log archived; its workflow may still be open
    target_s: float
    archive_target_s: float | None = None
    restarts: int = 0
    publish_retries: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        # Timed from the fault's end: an outage longer than the target (PostgreSQL for 90 s)
        # could not meet it otherwise; the fault's start is printed beside it.
        v = self.verdict
        clean = not (v.lost or v.duplicated or v.wrong or v.unverified_purges or v.running)
        settled = self.recovery_to_settled_s
        fast = settled is not None and settled <= self.target_s
        if self.archive_target_s is not None:
            archived = self.recovery_to_archived_s
            fast = fast and archived is not None and archived <= self.archive_target_s
        return clean and fast and not v.wrong_reads


# --- faults -------------------------------------------------------------------------------


def sigkill(*names: str, down_s: float = 5.0) -> Fault:
    async def fault(stack: Stack) -> None:
        stack.kill(*names)
        await asyncio.sleep(down_s)
        stack.revive(*names)

    return fault


async def sigkill_temporal(stack: Stack) -> None:
    stack.temporal.child.kill()
    await asyncio.sleep(5)
    await stack.temporal.start()


async def kill_rabbitmq(stack: Stack) -> None:
    stack.rabbit.child.kill()
    await asyncio.sleep(5)
    await stack.rabbit.start()


def postgres_down(seconds: float) -> Fault:
    async def fault(stack: Stack) -> None:
        await asyncio.to_thread(stack.postgres.crash)
        await asyncio.sleep(seconds)
        await asyncio.to_thread(stack.postgres.start)

    return fault


def s3(mode: str, seconds: float = S3_FAULT_S) -> Fault:
    async def fault(stack: Stack) -> None:
        await stack.proxy.set_mode(mode)
        await asyncio.sleep(seconds)
        await stack.proxy.set_mode(RELAY)

    return fault


async def s3_blackhole_then_corrupt(stack: Stack) -> None:
    await s3(BLACKHOLE, 15)(stack)
    await s3(CORRUPT, 15)(stack)


async def everything_at_once(stack: Stack) -> None:
    """Overlapping: processes killed, S3 blackholed then corrupting, PostgreSQL, RabbitMQ and
    Temporal down."""
    await asyncio.gather(
        sigkill("ingest-1", "worker-1", down_s=10)(stack),
        s3_blackhole_then_corrupt(stack),
        postgres_down(10)(stack),
        kill_rabbitmq(stack),
        sigkill_temporal(stack),
    )


async def everything_killed(stack: Stack) -> None:
    """Every process and service but S3 SIGKILLed (PostgreSQL stopped hard) in one instant."""
    stack.kill(*PROCESSES)
    stack.temporal.child.kill()
    stack.rabbit.child.kill()
    await asyncio.to_thread(stack.postgres.crash)
    await asyncio.sleep(5)
    await asyncio.to_thread(stack.postgres.start)
    await asyncio.gather(stack.rabbit.start(), stack.temporal.start())
    stack.revive(*PROCESSES)


async def no_fault(stack: Stack) -> None:
    del stack


ROUNDS = {
    r.name: r
    for r in (
        # No fault: the lifecycle's own time (stream, quiet period, grace window) to compare with.
        Round("baseline", no_fault),
        Round("sigkill-ingest", sigkill("ingest-1")),
        Round("sigkill-worker", sigkill("worker-1")),
        Round("sigkill-temporal", sigkill_temporal),
        Round("rabbitmq-killed", kill_rabbitmq),
        Round("postgres-down-10s", postgres_down(10)),
        Round("postgres-down-90s", postgres_down(90), combined=True),
        Round("s3-refusing", s3(REFUSE)),
        # The target: a log archived within 30 s of S3 answering again.
        Round("s3-blackhole", s3(BLACKHOLE), archive_target_s=30),
        Round("s3-corrupting", s3(CORRUPT)),
        Round("late-divergent", no_fault, late=True),
        Round("everything-at-once", everything_at_once, combined=True),
        Round("everything-killed", everything_killed, combined=True),
    )
}


# --- running a round ------------------------------------------------------------------------


@dataclass(frozen=True)
class Settling:
    """When every log was archived (verified, purged) and when every workflow had closed too."""

    archived_at: float | None
    settled_at: float | None


async def wait_settled(
    stack: Stack, client: Client, truths: list[Truth], timeout: float
) -> Settling:
    """Poll until settled; a time is None when it had not come after `timeout`."""
    deadline = time.monotonic() + timeout
    archived_at: float | None = None
    while time.monotonic() < deadline:
        if archived_at is None and await archived(stack.postgres.dsn, truths):
            archived_at = time.monotonic()
        if archived_at is not None and await running_workflows(client) == 0:
            return Settling(archived_at, time.monotonic())
        await asyncio.sleep(1)
    return Settling(archived_at, None)


def _since(start: float, end: float | None) -> float | None:
    return None if end is None else end - start


async def run_round(
    stack: Stack, client: Client, spec: Round, load: Load, first_job: int
) -> Outcome:
    restarts, corrupted = len(stack.restarted), stack.proxy.corrupted
    options = SimulationOptions(
        jobs=load.jobs,
        concurrency=load.jobs,
        seed=first_job % 2**32,
        start_job_id=first_job,
        job=JobOptions(
            ContentOptions(log_bytes=load.log_bytes), speed=load.speed, faults=STREAM_FAULTS
        ),
    )
    sink = RetryingSink(stack.rabbit.url)
    simulation = asyncio.create_task(Simulation(options, sink).run())
    try:
        if spec.late:
            return await _late_round(stack, client, spec, load, options, sink, simulation)
        await asyncio.sleep(load.fault_after_s)
        fault_at = time.monotonic()
        await spec.fault(stack)
        recovered_at = time.monotonic()
        manifest = await simulation
    finally:
        await sink.close()
    truths = [Truth.of(build_job(job.job_id, options.seed, options.job)) for job in manifest.jobs]
    notes = _check_manifest(manifest.jobs, truths)
    done = await wait_settled(stack, client, truths, load.settle_timeout_s)
    if len(stack.restarted) > restarts:
        notes.append(f"restarted after exiting: {', '.join(stack.restarted[restarts:])}")
    if stack.proxy.corrupted > corrupted:
        notes.append(f"{stack.proxy.corrupted - corrupted} uploads corrupted in transit")
    verdict = await judge(stack.postgres.dsn, stack.s3_url, client, truths)
    return Outcome(
        spec.name, verdict, _since(fault_at, done.settled_at), _since(recovered_at, done.settled_at),
        _since(recovered_at, done.archived_at), spec.target_s,
        spec.archive_target_s, len(stack.restarted) - restarts, sink.retries, notes,
    )  # fmt: skip


def _check_manifest(records: Sequence[JobRecord], truths: list[Truth]) -> list[str]:
    """The oracle's expected logs must be the simulator's (its manifest says size and SHA)."""
    wrong = [t.job_id for t, r in zip(truths, records, strict=True) if t.sha256 != r.sha256]
    return [f"oracle differs from the manifest for {len(wrong)} jobs"] if wrong else []


async def _late_round(
    stack: Stack,
    client: Client,
    spec: Round,
    load: Load,
    options: SimulationOptions,
    sink: RetryingSink,
    simulation: asyncio.Task[Manifest],
) -> Outcome:
    """Every log purged first; then late parts (new numbers) and divergent re-sends."""
    manifest = await simulation
    jobs = [build_job(job.job_id, options.seed, options.job) for job in manifest.jobs]
    truths = [Truth.of(job) for job in jobs]
    first = await wait_settled(stack, client, truths, load.settle_timeout_s)
    notes = [] if first.settled_at else ["the logs did not settle before the late parts"]
    rng = random.Random(options.seed)
    late = [_late_messages(truth, rng) for truth in truths]
    fault_at = time.monotonic()
    for messages in late:
        await sink.send(messages)
    recovered_at = time.monotonic()
    wrong_reads, in_window = await _read_during_merge(stack, truths, late)
    notes.append(f"{in_window} reads while late parts waited to be merged")
    done = await wait_settled(stack, client, truths, load.settle_timeout_s)
    verdict = await judge(stack.postgres.dsn, stack.s3_url, client, truths)
    verdict.wrong_reads = wrong_reads
    return Outcome(
        spec.name, verdict, _since(fault_at, done.settled_at), _since(recovered_at, done.settled_at),
        _since(recovered_at, done.archived_at), spec.target_s, spec.archive_target_s, 0,
        sink.retries, notes,
    )  # fmt: skip


def _late_messages(truth: Truth, rng: random.Random) -> list[PartMessage]:
    """Two parts after the final one, and two held numbers re-sent with other text."""
    final = max(truth.parts)
    request = str(uuid.uuid4())
    sent: list[PartMessage] = []
    for number in (final + 1, final + 2):
        text = f"late part {number} of job {truth.job_id}\n"
        sent.append(PartMessage(truth.job_id, Part(number, text.encode(), 0), request))
        truth.add(number, text)
    held = [n for n, text in truth.parts.items() if text and n < final]
    for number in rng.sample(held, min(2, len(held))):
        text = f"divergent re-send of part {number}\n"
        sent.append(PartMessage(truth.job_id, Part(number, text.encode(), 0), request))
        truth.add(number, text)  # ignored: the number is held
    rng.shuffle(sent)
    return sent


async def _read_during_merge(
    stack: Stack, truths: list[Truth], late: list[list[PartMessage]]
) -> tuple[int, int]:
    """GET /logs/:job_id for each job once its late parts are stored; (wrong reads, in window)."""
    expected_parts = {t.job_id: len(m) for t, m in zip(truths, late, strict=True)}
    conn = await asyncpg.connect(stack.postgres.dsn)
    wrong = in_window = 0
    headers = {"Authorization": f"token {AUTH_TOKEN}"}
    base = f"http://127.0.0.1:{stack.api_port}"
    try:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as api:
            for truth in truths:
                pending = await _stored_late(conn, truth.job_id, expected_parts[truth.job_id])
                got = (await api.get(f"/logs/{truth.job_id}")).json().get("content")
                in_window += pending
                wrong += got != truth.log
    finally:
        await conn.close()
    return wrong, in_window


async def _stored_late(conn: asyncpg.Connection, job_id: int, count: int) -> bool:
    """Wait until the job's late parts are stored; True when they still wait to be merged."""
    for _ in range(100):
        row = await conn.fetchrow(
            "SELECT count(*) AS stored, bool_or(p.number <> ALL(l.part_numbers)) AS pending"
            " FROM log_parts p JOIN logs l ON l.id = p.log_id WHERE l.job_id = $1",
            job_id,
        )
        if row["stored"] >= count or row["pending"] is False:
            return bool(row["pending"])
        await asyncio.sleep(0.1)
    return False
