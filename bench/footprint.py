"""What a capacity level wrote and how the worker's SDK saw its tasks, read before and after.

Each reading is a few queries or one scrape at the level's start and end, none while the
load runs: the database's size and the cluster's WAL position (PostgreSQL is shared, so WAL
counts every database's writes), the S3 stand-in's folder, and the Temporal SDK's
Prometheus histograms of task schedule-to-start latency per task queue (the sticky queue is
the worker's own), with its poller and slot gauges.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

_HISTOGRAMS = ("schedule_to_start", "workflow_task_execution_latency", "activity_execution")
_GAUGES = ("num_pollers", "worker_task_slots_available")


@dataclass
class Writes:
    """Bytes so far: the bench's database, the cluster's WAL, the S3 stand-in's folder."""

    database: int
    wal: int
    s3: int

    def __sub__(self, other: Writes) -> Writes:
        return Writes(self.database - other.database, self.wal - other.wal, self.s3 - other.s3)


async def writes(pool: asyncpg.Pool, database: str, s3_folder: Path) -> Writes:
    row = await pool.fetchrow(
        "SELECT pg_database_size($1) AS size,"
        " pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint AS wal",
        database,
    )
    assert row is not None
    return Writes(row["size"], row["wal"], folder_bytes(s3_folder))


def folder_bytes(root: Path) -> int:
    """Bytes of the files under `root` (bodies and their header files)."""
    if not root.is_dir():
        return 0
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


@dataclass
class SdkMetrics:
    """Histogram buckets (cumulative counts by upper bound) and gauges, by metric and queue."""

    buckets: dict[tuple[str, str], dict[float, float]] = field(default_factory=dict)
    sums: dict[tuple[str, str], float] = field(default_factory=dict)
    gauges: dict[tuple[str, str], float] = field(default_factory=dict)

    def __sub__(self, other: SdkMetrics) -> SdkMetrics:
        buckets = {
            key: {le: n - other.buckets.get(key, {}).get(le, 0) for le, n in counts.items()}
            for key, counts in self.buckets.items()
        }
        sums = {key: v - other.sums.get(key, 0) for key, v in self.sums.items()}
        return SdkMetrics(buckets, sums, dict(self.gauges))

    def lines(self, normal_queue: str) -> list[str]:
        """One line per histogram and queue: count, mean, share within each bound."""
        out = []
        for (name, queue), counts in sorted(self.buckets.items()):
            total = counts.get(math.inf, 0)
            if not total:
                continue
            kind = "normal" if queue == normal_queue else "sticky"
            shares = "  ".join(
                f"<={le:g}s {n / total:4.0%}"
                for le, n in sorted(counts.items())
                if le in (0.01, 0.1, 1, 5, 10) or (le != math.inf and le >= 1 and le == int(le))
            )
            mean = self.sums.get((name, queue), 0) / total
            out.append(f"      {name:48s} {kind:6s} n={total:6.0f} mean {mean:6.3f} s  {shares}")
        for (name, label), value in sorted(self.gauges.items()):
            out.append(f"      {name} {label} = {value:g}")
        return out


async def sdk_metrics(http: httpx.AsyncClient, url: str) -> SdkMetrics:
    """The worker's SDK metrics of interest; empty when the endpoint does not answer."""
    try:
        text = (await http.get(url, timeout=5)).text
    except httpx.HTTPError:
        return SdkMetrics()
    found = SdkMetrics(defaultdict(dict), {}, {})
    for family in text_string_to_metric_families(text):
        if any(part in family.name for part in _HISTOGRAMS):
            for sample in family.samples:
                key = (family.name, sample.labels.get("task_queue", ""))
                if sample.name.endswith("_bucket"):
                    le = float(sample.labels["le"])
                    found.buckets[key][le] = found.buckets[key].get(le, 0) + sample.value
                elif sample.name.endswith("_sum"):
                    found.sums[key] = found.sums.get(key, 0) + sample.value
        elif any(part in family.name for part in _GAUGES):
            for sample in family.samples:
                label = sample.labels.get("poller_type") or sample.labels.get("worker_type", "")
                found.gauges[(family.name, label)] = sample.value
    found.buckets = dict(found.buckets)
    return found
