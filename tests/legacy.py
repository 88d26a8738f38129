"""A travis-logs (Ruby) database in its 2016 and 2025 shapes, seeded with logs in every state.

The DDL follows reference/travis-logs.md §2.1 (Sequel, 2016) and §2.2 (sqitch, 2025): no
unique constraints, no foreign key, timestamps without a time zone, integer log ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg

_TABLES_2016 = """
CREATE TABLE schema_migrations (filename text PRIMARY KEY);
INSERT INTO schema_migrations VALUES ('20140424161738_create_logs.rb'),
    ('20140424162223_create_log_parts.rb'), ('20160112184800_add_log_parts_created_at_index.rb');
CREATE TABLE logs (
    id serial PRIMARY KEY, job_id integer, content text,
    created_at timestamp, updated_at timestamp, aggregated_at timestamp,
    archived_at timestamp, purged_at timestamp, removed_at timestamp,
    archiving boolean, archive_verified boolean, removed_by integer
);
CREATE INDEX index_logs_on_archive_verified ON logs (archive_verified);
CREATE INDEX index_logs_on_archived_at ON logs (archived_at);
CREATE INDEX index_logs_on_job_id ON logs (job_id);
CREATE TABLE log_parts (
    id bigserial PRIMARY KEY, log_id integer NOT NULL, content text, number integer,
    final boolean, created_at timestamp
);
CREATE INDEX index_log_parts_on_log_id_and_number ON log_parts (log_id, number);
CREATE INDEX index_log_parts_on_created_at ON log_parts (created_at);
"""

_TABLES_2025 = """
CREATE SCHEMA sqitch;
CREATE TABLE sqitch.changes (change_id text PRIMARY KEY, change text NOT NULL);
INSERT INTO sqitch.changes VALUES ('a', 'structure'), ('b', 'logs_create_scan_status');
CREATE SEQUENCE log_parts_id_seq;
CREATE TABLE log_parts (
    id bigint NOT NULL DEFAULT nextval('log_parts_id_seq'), log_id integer NOT NULL,
    content text, number integer, final boolean,
    created_at timestamp NOT NULL DEFAULT '2000-01-01'::timestamp,
    CONSTRAINT log_parts_pkey PRIMARY KEY (id)
);
ALTER SEQUENCE log_parts_id_seq OWNED BY log_parts.id;
CREATE SEQUENCE logs_id_seq AS integer;
CREATE TABLE logs (
    id integer NOT NULL DEFAULT nextval('logs_id_seq'), job_id integer, content text,
    removed_by integer, created_at timestamp, updated_at timestamp, aggregated_at timestamp,
    archived_at timestamp, purged_at timestamp, removed_at timestamp, archiving boolean,
    archive_verified boolean, scan_status varchar, scan_status_updated_at timestamp,
    censored boolean, scan_queued_at timestamp, scan_started_at timestamp,
    scan_processing_at timestamp, scan_finalizing_at timestamp, scan_ended_at timestamp,
    CONSTRAINT logs_pkey PRIMARY KEY (id)
);
ALTER SEQUENCE logs_id_seq OWNED BY logs.id;
CREATE INDEX index_log_parts_on_created_at ON log_parts (created_at);
CREATE INDEX index_log_parts_on_log_id_and_number ON log_parts (log_id, number);
CREATE INDEX index_logs_on_archive_verified ON logs (archive_verified);
CREATE INDEX index_logs_on_archived_at ON logs (archived_at);
CREATE INDEX index_logs_on_job_id ON logs (job_id);
CREATE TABLE scan_tracker (
    id bigserial PRIMARY KEY, log_id bigint NOT NULL, scan_status varchar, details jsonb,
    created_at timestamp
);
"""

SHAPES = {"2016": _TABLES_2016, "2025": _TABLES_2025}

# Every state of reference §5-§7 a log can be left in, and the cases ours forbids.
STATES = (
    "parts_only",
    "final_not_aggregated",
    "aggregated_not_archived",
    "archived_not_verified",
    "verified_not_purged",
    "purged",
    "duplicate_logs",
    "duplicate_parts",
)
LONG_AGO = datetime(2025, 1, 2, 3, 4, 5)  # travis-logs wrote UTC without a zone


@dataclass
class SeededLog:
    """One job as seeded: its state and the log its archive must end up holding."""

    job_id: int
    state: str
    log: str
    # What S3 holds before adoption (travis-logs archived it), when anything.
    archived: str | None = None


@dataclass
class Seeded:
    logs: dict[str, SeededLog] = field(default_factory=dict)
    log_rows: int = 0
    part_rows: int = 0

    def job(self, state: str) -> int:
        return self.logs[state].job_id


class _Seeder:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn
        self.seeded = Seeded()

    async def log(self, job_id: int | None, **cols: object) -> int:
        names = ["job_id", "created_at", "updated_at", *cols]
        values = [job_id, LONG_AGO, LONG_AGO, *cols.values()]
        marks = ", ".join(f"${i}" for i in range(1, len(values) + 1))
        sql = f"INSERT INTO logs ({', '.join(names)}) VALUES ({marks}) RETURNING id"
        self.seeded.log_rows += 1
        log_id: int = await self._conn.fetchval(sql, *values)
        return log_id

    async def parts(self, log_id: int, parts: list[tuple[int, str, bool]]) -> None:
        await self._conn.executemany(
            "INSERT INTO log_parts (log_id, number, content, final, created_at)"
            " VALUES ($1, $2, $3, $4, $5)",
            [(log_id, n, text, final, LONG_AGO) for n, text, final in parts],
        )
        self.seeded.part_rows += len(parts)

    def expect(self, state: str, job_id: int, log: str, archived: str | None = None) -> None:
        self.seeded.logs[state] = SeededLog(job_id, state, log, archived)


async def seed(conn: asyncpg.Connection, jobs: Iterator[int]) -> Seeded:
    """One job per state (ids taken from `jobs`), plus rows of no job and of no log."""
    s = _Seeder(conn)
    later = LONG_AGO + timedelta(minutes=5)

    job = next(jobs)
    await s.parts(await s.log(job), [(0, "streaming 0\n", False), (1, "streaming 1\n", False)])
    s.expect("parts_only", job, "streaming 0\nstreaming 1\n")

    job = next(jobs)
    await s.parts(await s.log(job), [(1, "b\n", False), (0, "a\n", False), (2, "", True)])
    s.expect("final_not_aggregated", job, "a\nb\n")

    job = next(jobs)
    await s.log(job, content="aggregated\n", aggregated_at=later)
    s.expect("aggregated_not_archived", job, "aggregated\n")

    job = next(jobs)
    await s.log(
        job, content="archived\n", aggregated_at=later, archived_at=later, archive_verified=False
    )
    s.expect("archived_not_verified", job, "archived\n", archived="archi")  # a short object

    job = next(jobs)
    await s.log(
        job, content="verified\n", aggregated_at=later, archived_at=later, archive_verified=True
    )
    s.expect("verified_not_purged", job, "verified\n", archived="verified\n")

    job = next(jobs)
    await s.log(job, aggregated_at=later, archived_at=later, archive_verified=True, purged_at=later)
    s.expect("purged", job, "purged\n", archived="purged\n")

    # Two rows for one job: the first keeps its part 1, the second's part 1 is a duplicate.
    job = next(jobs)
    first, second = await s.log(job), await s.log(job)
    await s.parts(first, [(0, "one 0\n", False), (1, "one 1\n", False)])
    await s.parts(second, [(1, "two 1\n", False), (2, "two 2\n", False), (3, "", True)])
    s.expect("duplicate_logs", job, "one 0\none 1\ntwo 2\n")

    job = next(jobs)
    log_id = await s.log(job)
    await s.parts(log_id, [(0, "x\n", False), (1, "y\n", False), (1, "y again\n", False)])
    await s.parts(log_id, [(2, "z\n", True)])
    s.expect("duplicate_parts", job, "x\ny\nz\n")

    # Nothing can adopt these; they must survive in adoption_merges.
    nobody = await s.log(None, content="of no job\n")
    await s.parts(nobody, [(0, "of no job\n", True)])
    await s.parts(nobody + 10_000_000, [(0, "of no log\n", True)])
    return s.seeded


async def create(dsn: str, shape: str, jobs: Iterator[int]) -> Seeded:
    """Create travis-logs' tables in the (empty) database `dsn` and seed them."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await conn.execute(SHAPES[shape])
            return await seed(conn, jobs)
    finally:
        await conn.close()
