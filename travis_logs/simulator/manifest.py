"""What a simulation sent, per job: the size and SHA-256 of the log each archive must equal."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from travis_logs.errors import ConfigError

VERSION = 1
TABLE_ROWS = 20  # a run of 10,000 jobs prints its first rows and the totals


@dataclass(frozen=True)
class FaultCounts:
    """Faults injected into one job's stream."""

    duplicates: int = 0
    reordered: int = 0
    late: int = 0
    poison: int = 0


@dataclass(frozen=True)
class JobRecord:
    """One job: distinct parts sent (the empty final one included) and its expected log."""

    job_id: int
    parts: int
    bytes: int
    sha256: str
    faults: FaultCounts = field(default_factory=FaultCounts)


@dataclass(frozen=True)
class Manifest:
    """A simulation run: the seed that reproduces it and one record per job."""

    seed: int
    jobs: tuple[JobRecord, ...]

    def to_json(self) -> str:
        return json.dumps({"version": VERSION, **asdict(self)}, indent=2) + "\n"

    def write(self, path: Path) -> None:
        path.write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """Parse a manifest; a malformed one is a ConfigError naming what is wrong."""
        try:
            data = json.loads(text)
            jobs = tuple(_record(job) for job in data["jobs"])
            return cls(seed=int(data["seed"]), jobs=jobs)
        except (ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"not a simulation manifest: {err!r}") from err

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"cannot read manifest {path}: {err.strerror}") from err
        return cls.from_json(text)


def _record(job: dict[str, Any]) -> JobRecord:
    sha = str(job["sha256"])
    if len(sha) != 64:
        raise ValueError(f"job {job['job_id']}: sha256 {sha!r} is not 64 hex digits")
    faults = FaultCounts(**job.get("faults", {}))
    return JobRecord(int(job["job_id"]), int(job["parts"]), int(job["bytes"]), sha, faults)


def render(manifest: Manifest, console: Console) -> None:
    """The run as a table: the first jobs, then totals."""
    table = Table(title=f"simulated jobs (seed {manifest.seed})")
    for name in ("job id", "parts", "bytes", "sha256", "dup", "reord", "late", "poison"):
        table.add_column(name, justify="left" if name == "sha256" else "right")
    for job in manifest.jobs[:TABLE_ROWS]:
        f = job.faults
        table.add_row(
            *map(
                str,
                (
                    job.job_id,
                    job.parts,
                    job.bytes,
                    job.sha256[:16],
                    f.duplicates,
                    f.reordered,
                    f.late,
                    f.poison,
                ),
            )
        )
    if len(manifest.jobs) > TABLE_ROWS:
        table.add_row(f"... {len(manifest.jobs) - TABLE_ROWS} more", *[""] * 7)
    table.add_section()
    table.add_row("total", *map(str, _totals(manifest.jobs)))
    console.print(table)


def _totals(jobs: Sequence[JobRecord]) -> tuple[int | str, ...]:
    return (
        sum(j.parts for j in jobs),
        sum(j.bytes for j in jobs),
        "",
        sum(j.faults.duplicates for j in jobs),
        sum(j.faults.reordered for j in jobs),
        sum(j.faults.late for j in jobs),
        sum(j.faults.poison for j in jobs),
    )
