"""Which stored parts a log's workflow hears of: the transition rules alone, no server."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ingest.transitions import KnownLog, transitions
from workflows.models import PartRef, PartsSignal

LOG_ID, JOB_ID = 7, 4242


@dataclass(frozen=True)
class Case:
    """A log as the batch found it, the part numbers the insert reported as new, the refs."""

    final_number: int | None
    empty: bool
    new: tuple[int, ...]
    finals: tuple[int, ...]
    signalled: tuple[int, ...]
    # The signal opens the log: its run may sleep until the final part (a start delay).
    opens: bool = False


CASES = {
    "first part of a new log": Case(None, True, (0,), (), (0,), opens=True),
    "first parts of a new log, only the lowest": Case(None, True, (3, 1, 2), (), (1,), True),
    "a middle part is no news": Case(None, False, (5,), (), ()),
    "final part": Case(None, False, (9,), (9,), (9,)),
    "first and final in one batch": Case(None, True, (0, 1, 2), (2,), (0, 2)),
    "empty log: only a final part": Case(None, True, (0,), (0,), (0,)),
    "final inside the batch: later parts are late": Case(None, False, (4, 5, 6), (5,), (5, 6)),
    "after final: every new part": Case(9, False, (10, 11), (), (10, 11)),
    "after final, a log emptied since": Case(9, True, (12,), (), (12,)),
    "nothing new": Case(None, True, (), (), ()),
}


def _rows(case: Case) -> list[dict[str, object]]:
    return [
        {"log_id": LOG_ID, "number": n, "final": n in case.finals, "size": 10 * n} for n in case.new
    ]


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_transition_table(case: Case) -> None:
    log = KnownLog(LOG_ID, JOB_ID, case.final_number, case.empty)
    refs = [PartRef(n, 10 * n, n in case.finals) for n in case.signalled]
    expected = [PartsSignal(JOB_ID, refs, opens=case.opens)]
    assert transitions(_rows(case), {LOG_ID: log}) == (expected if case.signalled else [])


def test_one_signal_per_job_of_the_batch() -> None:
    """Two jobs in one batch: each gets its own signal, carrying only its own refs."""
    logs = {1: KnownLog(1, 100, None, True), 2: KnownLog(2, 200, None, False)}
    rows: list[dict[str, object]] = [
        {"log_id": 1, "number": 0, "final": False, "size": 5},
        {"log_id": 2, "number": 3, "final": False, "size": 5},
        {"log_id": 2, "number": 4, "final": True, "size": None},
    ]
    assert transitions(rows, logs) == [
        PartsSignal(100, [PartRef(0, 5, False)], opens=True),
        PartsSignal(200, [PartRef(4, 0, True)]),
    ]


def test_only_the_batch_that_created_the_row_says_so() -> None:
    """`created` rides on the first part's signal of a row this batch created, and on no
    other: a row that existed empty (purged after a forced round, cleared) is read first."""
    logs = {1: KnownLog(1, 100, None, True, created=True), 2: KnownLog(2, 200, None, True)}
    rows: list[dict[str, object]] = [
        {"log_id": 1, "number": 0, "final": False, "size": 5},
        {"log_id": 2, "number": 0, "final": False, "size": 5},
    ]
    assert [(s.job_id, s.created) for s in transitions(rows, logs)] == [(100, True), (200, False)]
