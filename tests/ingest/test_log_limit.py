"""The size limit in the intake against real PostgreSQL (and Temporal for the signals).

Two intakes (two ingest processes) store batches of the same log at once: the row lock of
the count orders them, so the log ends up with the same head and tail as one would keep,
every byte is stored or counted, and the database holds no more than the limit after any
commit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
import pytest
from temporalio.client import Client

from ingest.intake import PartIntake, assemble
from tests.helpers import log_row
from travis_logs.parts import LogPart
from travis_logs.settings import Settings

SIZE = 100
PARTS = 300
BATCH = 10


@pytest.fixture
def small(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"logs_max_bytes": 10_240, "logs_head_bytes": 2048, "logs_tail_bytes": 6144}
    )


class Pushed:
    """Takes the live pushes (the limit is on storage: every part is offered)."""

    def __init__(self) -> None:
        self.numbers: list[int] = []

    def offer(self, parts: Sequence[LogPart]) -> None:
        self.numbers += [p.number for p in parts]


def text(number: int) -> str:
    line = f"{number:05d} "
    return line + "x" * (SIZE - len(line) - 1) + "\n"


async def stored(pool: asyncpg.Pool, job_id: int) -> dict[int, str]:
    rows = await pool.fetch(
        "SELECT p.number, p.content FROM log_parts p JOIN logs l ON l.id = p.log_id"
        " WHERE l.job_id = $1",
        job_id,
    )
    return {r["number"]: r["content"] for r in rows}


async def test_two_ingests_at_once_keep_one_head_and_tail(
    small: Settings, pool: asyncpg.Pool, temporal_client: Client, job_id: int
) -> None:
    publisher = Pushed()
    one = assemble(pool, temporal_client, small, publisher).parts
    two = assemble(pool, temporal_client, small, publisher).parts
    batches = [list(range(at, at + BATCH)) for at in range(0, PARTS, BATCH)]
    highest: list[int] = []

    async def feed(intake: PartIntake, mine: list[list[int]]) -> None:
        for numbers in mine:
            await intake.accept([LogPart(job_id, n, text(n)) for n in numbers])
            held = await pool.fetchval(
                "SELECT coalesce(sum(octet_length(p.content)), 0) FROM log_parts p"
                " JOIN logs l ON l.id = p.log_id WHERE l.job_id = $1",
                job_id,
            )
            highest.append(held)

    await asyncio.gather(feed(one, batches[0::2]), feed(two, batches[1::2]))
    # A batch delivered again (a crash before its ack): the stored parts are duplicates.
    again = await one.accept([LogPart(job_id, n, text(n)) for n in range(PARTS - BATCH, PARTS)])

    assert sorted(publisher.numbers) == list(range(PARTS))
    assert again.stored == 0
    assert max(highest) <= small.logs_max_bytes
    kept = await stored(pool, job_id)
    # 20 parts of 100 bytes fit the 2,048-byte head, 61 the 6,144-byte tail.
    assert kept == {n: text(n) for n in [*range(20), *range(PARTS - 61, PARTS)]}
    row = await log_row(pool, job_id)
    assert row["received_bytes"] == PARTS * SIZE
    assert (row["elided_bytes"], row["elided_parts"]) == ((PARTS - 81) * SIZE, PARTS - 81)
    assert (row["elided_from"], row["tail_from"]) == (20, PARTS - 61)
    assert (row["head_bytes"], row["tail_bytes"]) == (20 * SIZE, 61 * SIZE)


async def test_a_purged_log_that_goes_on_counts_from_its_stored_parts(
    small: Settings, pool: asyncpg.Pool, temporal_client: Client, job_id: int
) -> None:
    """Its archived bytes took it past the limit, but they are not in the database: the
    parts stored since are kept whole up to the limit, then cut."""
    await pool.execute(
        "INSERT INTO logs (job_id, received_bytes, part_numbers, part_sizes)"
        " VALUES ($1, 9000, ARRAY[0, 1], ARRAY[4500, 4500])",
        job_id,
    )
    intake = assemble(pool, temporal_client, small, Pushed()).parts
    await intake.accept([LogPart(job_id, n, text(n)) for n in range(2, 17)])
    row = await log_row(pool, job_id)
    assert row["elided_from"] is None and row["received_bytes"] == 15 * SIZE
    for at in range(17, 117, BATCH):
        await intake.accept([LogPart(job_id, n, text(n)) for n in range(at, at + BATCH)])
    row = await log_row(pool, job_id)
    assert row["elided_from"] is not None and row["received_bytes"] == 115 * SIZE
    assert sum(len(t) for t in (await stored(pool, job_id)).values()) <= small.logs_max_bytes
