"""A log part as every process sees it once it has been parsed and cleaned (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

# `"number": "last"` sorts after every other part; travis-logs stores it as INT_MAX.
LAST_PART_NUMBER = 2147483647
MAX_JOB_ID = 2**63 - 1  # logs.job_id is a bigint


@dataclass(frozen=True, slots=True)
class LogPart:
    """One cleaned part of a job's log: what the database stores and Pusher forwards."""

    job_id: int
    number: int
    content: str
    final: bool = False
