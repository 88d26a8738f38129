"""Acceptance: a simulated job, faults and all, ends as one archive equal to its manifest entry.

Runs the real processes (`travis-logs ingest` and `travis-logs worker`) against this session's
PostgreSQL, RabbitMQ, Temporal dev server and moto S3.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import free_port
from travis_logs.settings import Settings
from travis_logs.simulator.content import ContentOptions
from travis_logs.simulator.faults import FaultOptions
from travis_logs.simulator.job import JobOptions
from travis_logs.simulator.runner import SimulationOptions
from workers import simulate, verify_archives

pytestmark = pytest.mark.timeout(120)

# Late parts arrive well after the quiet period: the log has been aggregated (and maybe
# archived and purged) by then, and must be merged again in number order.
FAULTS = FaultOptions(duplicates=0.3, reorder_window=5, late_parts=3, late_delay_s=1.5, poison=6)


def process_env(settings: Settings) -> dict[str, str]:
    return os.environ | {
        "DATABASE_URL": str(settings.database_url),
        "RABBITMQ_URL": str(settings.rabbitmq_url),
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "S3_ENDPOINT_URL": str(settings.s3_endpoint_url),
        "S3_BUCKET": settings.s3_bucket,
        "AMQP_EXCHANGE": settings.amqp_exchange,
        "AMQP_QUEUE": settings.amqp_queue,
        "LOGS_QUIET_PERIOD_S": "0.2",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        # Nobody listens here: live pushes fail and are counted, which ingest must survive.
        "PUSHER_APP_ID": "1",
        "PUSHER_KEY": "key",
        "PUSHER_SECRET": "secret",
        "PUSHER_HOST": "127.0.0.1",
        "PUSHER_PORT": str(free_port()),
        "PUSHER_SSL": "false",
    }


@pytest.fixture
def system(settings: Settings, tmp_path: Path) -> Iterator[list[Path]]:
    """`travis-logs ingest` and `travis-logs worker` running; stopped by PID afterwards."""
    env = process_env(settings)
    processes, logs = [], []
    for name in ("ingest", "worker"):
        log = tmp_path / f"{name}.log"
        with log.open("wb") as out:
            argv = [sys.executable, "-m", "workers.cli", name]
            processes.append(subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT))
        logs.append(log)
    yield logs
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def test_faulty_job_ends_as_one_archive_equal_to_the_manifest(
    settings: Settings, system: list[Path], job_id: int
):
    """Duplicates, reordering, late parts and poison: the archive is still exactly the expected log."""
    job = JobOptions(
        content=ContentOptions(log_bytes=40_000, odd_byte_rate=0.02), speed=0, faults=FAULTS
    )
    manifest = await simulate.run(
        settings, SimulationOptions(jobs=1, seed=2024, start_job_id=job_id, job=job)
    )
    faults = manifest.jobs[0].faults
    assert faults.duplicates and faults.reordered and faults.late == 3 and faults.poison == 6
    report = await verify_archives.run(settings, manifest, wait_s=60)
    logs = "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in system)
    assert report.ok, f"{report}\n{logs}"
    assert report.matched == (job_id,)
