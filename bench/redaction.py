"""Benchmark of redaction: a 4 MB log redacted end to end, against archiving the same log.

Starts its own Temporal dev server, moto S3 and a throwaway database (bench/lifecycle.py's
`services`) and runs the production worker in this process. For each sample a 4 MB log of
1,024 parts (a secret in 3 of them, one occurrence split across two parts) is archived and
purged, timed from the final part's signal to the purged row (the baseline); then it is
redacted through the API's path (`api.redactions.apply`: stage, `redact` update), timed until
the update answers with the redacted version verified: the purged log's archive is read,
masked, written back as content, archived, verified and purged again. It prints the medians
and their ratio (target: redaction < 5 s on this machine).

Usage: python bench/redaction.py [--samples 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from api.redactions import RedactionRequest, apply
from bench.lifecycle import Bench, services
from workflows.client import signal_parts
from workflows.models import LogState, LogWorkflowState, PartRef, PartsSignal
from workflows.models import workflow_id as wid

PARTS = 1024
PART_BYTES = 4096
SECRET = "AKIAIOSFODNN7EXAMPLE-wJalrXUtnFEMI"
TARGET_S = 5.0
TIME_LIMIT_S = 300


def _parts() -> list[str]:
    line = "build step output, compiling module ✓ ...\n"
    filler = (line * (PART_BYTES // len(line.encode()) + 1)).encode()[: PART_BYTES - 64]
    text = filler.decode("utf-8", errors="ignore")
    parts = [text + f"part {n:05d}\n" for n in range(PARTS)]
    parts[10] += f"export KEY={SECRET}\n"
    parts[500] += f"curl -u {SECRET[:9]}"
    parts[501] = f"{SECRET[9:]} https://example.com\n" + parts[501]
    return parts


async def _archived_log(bench: Bench, parts: list[str]) -> tuple[int, float]:
    """Store the parts, signal the final one; seconds from that signal to the purged row."""
    job_id, bench.next_job = bench.next_job, bench.next_job + 1
    last = len(parts)
    async with bench.pool.acquire() as conn, conn.transaction():
        log_id = await conn.fetchval(
            "INSERT INTO logs (job_id, final_number) VALUES ($1, $2) RETURNING id", job_id, last
        )
        await conn.execute(
            "INSERT INTO log_parts (log_id, number, content, final)"
            " SELECT $1, n - 1, c, false FROM unnest($2::text[]) WITH ORDINALITY AS t(c, n)",
            log_id,
            parts,
        )
        await conn.execute(
            "INSERT INTO log_parts (log_id, number, content, final) VALUES ($1, $2, '', true)",
            log_id,
            last,
        )
    started = time.monotonic()
    signal = PartsSignal(job_id, [PartRef(0, len(parts[0])), PartRef(last, 0, True)])
    await signal_parts(bench.client, bench.settings, signal)
    handle = bench.client.get_workflow_handle(wid(job_id), result_type=LogWorkflowState)
    state = await handle.result()
    assert state.state == LogState.DONE, state
    return job_id, time.monotonic() - started


async def _redacted(bench: Bench, job_id: int) -> float:
    """Seconds for the whole redaction: request stored, update answered (verified)."""
    request = RedactionRequest(job_id, "bench", "leaked key", [SECRET])
    started = time.monotonic()
    result = await apply(bench.pool, bench.client, bench.settings, request)
    elapsed = time.monotonic() - started
    assert result.changed and result.archived and result.occurrences == 2, result
    return elapsed


async def run(samples: int) -> None:
    parts = _parts()
    size = sum(len(p.encode()) for p in parts)
    async with services(concurrency=1) as bench:
        await _archived_log(bench, parts[:4])  # warm-up: connections, caches
        archive_s, redact_s = [], []
        for _ in range(samples):
            job_id, archived = await _archived_log(bench, parts)
            archive_s.append(archived)
            redact_s.append(await _redacted(bench, job_id))
    a, r = statistics.median(archive_s), statistics.median(redact_s)
    print(f"log: {size / 1e6:.2f} MB in {PARTS} parts, 2 occurrences (one split across parts)")
    print(f"archive (final part -> purged): median {a:.2f} s over {samples}")
    print(
        f"redact end to end (request -> verified, from the purged archive): median {r:.2f} s "
        f"(target < {TARGET_S:.0f} s); ratio redact/archive {r / a:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(asyncio.wait_for(run(args.samples), timeout=TIME_LIMIT_S))
    sys.stdout.flush()
    os._exit(0)  # as bench/lifecycle.py: the SDK's threads can crash finalisation


if __name__ == "__main__":
    main()
