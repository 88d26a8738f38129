"""Fault rounds: the whole system on private services, one fault per round, judged by an oracle.

Starts a private PostgreSQL cluster, a second RabbitMQ node, a Temporal dev server on a
SQLite file, moto behind a fault proxy, and the processes as in production (two ingests,
two workers, the API, the local Pusher server). Each round streams simulated jobs
(re-deliveries, reordering, late parts, poison messages), injects its fault mid-stream,
waits until every log is purged with a verified archive and every workflow is closed, and
checks the result against the simulator's own expected logs (bench/faultkit/oracle.py).

Prints per round: jobs, parts, lost, duplicated, wrong archives, unverified purges, open
workflows, seconds from fault to settled, from recovery to settled and from recovery to
every log archived (verified and purged; its workflow may still wait out its grace window), against a first
round without a fault (the lifecycle's own time: the stream, the quiet period, the grace
window). Targets: all zeros; settled <= 60 s after a single fault ends, <= 120 s after
combined ones; after an S3 blackhole every log is archived <= 30 s after S3 answers again.

Usage: python bench/faults.py [--rounds s3-blackhole,sigkill-worker] [--jobs 100] [--repeat 1]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

if not __package__:  # run as a script (`make bench`): make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.faultkit.rounds import ROUNDS, Load, Outcome, run_round
from bench.faultkit.stack import Stack
from travis_logs.settings import Settings
from travis_logs.temporal import connect

# Lifecycle clocks of the processes: production defaults, but a short grace window after
# purge so that "every workflow closed" comes within the round.
LIFECYCLE = {"LOGS_GRACE_PERIOD_S": "10", "WORKER_STICKY_TIMEOUT_S": "5"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", default=",".join(ROUNDS), help="comma-separated round names")
    parser.add_argument("--jobs", type=int, default=100, help="jobs per round (default 100)")
    parser.add_argument("--repeat", type=int, default=1, help="run each round this many times")
    parser.add_argument("--keep", action="store_true", help="keep the logs folder")
    args = parser.parse_args()
    # The publisher retries while RabbitMQ is down, by design: not news for the report.
    logging.getLogger("aiormq").setLevel(logging.CRITICAL)
    names = [n for n in args.rounds.split(",") if n]
    unknown = [n for n in names if n not in ROUNDS]
    if unknown:
        parser.error(f"unknown rounds {unknown}; known: {', '.join(ROUNDS)}")
    folder = Path(tempfile.mkdtemp(prefix="travis-logs-faults-"))
    folder.chmod(0o755)  # the private PostgreSQL runs as its own OS user
    print(f"logs and data in {folder}", flush=True)
    outcomes = asyncio.run(_run(folder, names, Load(jobs=args.jobs), args.repeat))
    if not args.keep and all(o.ok for o in outcomes):
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if all(o.ok for o in outcomes) else 1


async def _run(folder: Path, names: list[str], load: Load, repeat: int) -> list[Outcome]:
    stack = Stack(folder, LIFECYCLE)
    outcomes: list[Outcome] = []
    try:
        await stack.start()
        settings = Settings(_env_file=None, temporal_address=stack.temporal.address)
        client = await connect(settings)
        first_job = int(time.time()) * 1000
        print(_HEADER, flush=True)
        for i, name in enumerate(n for n in names for _ in range(repeat)):
            outcome = await run_round(stack, client, ROUNDS[name], load, first_job + i * 100_000)
            outcomes.append(outcome)
            print(_row(outcome), flush=True)
    finally:
        await stack.stop()
    print(f"{sum(o.ok for o in outcomes)} of {len(outcomes)} rounds met every target")
    return outcomes


_HEADER = (
    f"{'round':<20} {'jobs':>5} {'parts':>6} {'lost':>5} {'dup':>4} {'wrong':>6} "
    f"{'unverif':>7} {'open':>5} {'fault->settled':>15} {'recovery->settled':>18} "
    f"{'recovery->archived':>19} "
    f"{'restarts':>8} {'ok':>3}  notes"
)


def _row(o: Outcome) -> str:
    v = o.verdict
    notes = list(o.notes)
    if v.wrong_reads:
        notes.append(f"{v.wrong_reads} wrong reads")
    if o.publish_retries:
        notes.append(f"{o.publish_retries} publishes retried")
    return (
        f"{o.name:<20} {v.jobs:>5} {v.parts:>6} {v.lost:>5} {v.duplicated:>4} {v.wrong:>6} "
        f"{v.unverified_purges:>7} {v.running:>5} {_s(o.fault_to_settled_s):>15} "
        f"{_s(o.recovery_to_settled_s):>18} {_s(o.recovery_to_archived_s):>19} {o.restarts:>8} {'yes' if o.ok else 'NO':>3}  "
        + "; ".join(notes)
    )


def _s(seconds: float | None) -> str:
    return "not settled" if seconds is None else f"{seconds:.1f} s"


if __name__ == "__main__":
    sys.exit(main())
