"""Reconciliation's decision from a log's row alone (no services)."""

from __future__ import annotations

import pytest
from rich.console import Console

from activities.reconcile_models import FixedLog
from activities.reconcile_plan import Action, LogDbState, LogRow, classify, state_of
from travis_logs.logrow import RowText
from workers.reconcile import summary_table

FORCE_AFTER_S = 10_800.0


def row(**cols: object) -> LogRow:
    text = RowText(
        has_text=bool(cols.pop("has_content", False)), purge_stamped=bool(cols.pop("purged", False))
    )
    return LogRow(log_id=1, job_id=42, text=text, **cols)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("cols", "state", "action"),
    [
        ({"parts": 3, "newest_part_age_s": 5.0}, LogDbState.PARTS_ONLY, Action.START),
        ({"parts": 3, "newest_part_age_s": 20_000.0}, LogDbState.PARTS_ONLY, Action.FORCE),
        ({"parts": 3, "final_number": 2}, LogDbState.FINAL_NOT_AGGREGATED, Action.START),
        ({"has_content": True}, LogDbState.AGGREGATED_NOT_ARCHIVED, Action.FORCE),
        ({"has_content": True, "archived": True}, LogDbState.ARCHIVED_NOT_VERIFIED, Action.FORCE),
        (
            {"has_content": True, "archived": True, "archive_verified": True},
            LogDbState.VERIFIED_NOT_PURGED,
            Action.FORCE,
        ),
        ({"purged": True, "archived": True}, LogDbState.PURGED, Action.NONE),
        ({}, LogDbState.EMPTY, Action.NONE),
    ],
)
def test_each_state_has_one_action(
    cols: dict[str, object], state: LogDbState, action: Action
) -> None:
    """Every travis-logs state maps to what its workflow needs to finish it."""
    plan = classify(row(**cols), FORCE_AFTER_S)
    assert (plan.state, plan.action) == (state, action)
    assert plan.reason


def test_parts_after_purge_are_pending_work() -> None:
    """A purged log with a part stored since is not done: the part must be merged."""
    late = row(purged=True, parts=1, final_number=None, newest_part_age_s=1.0)
    assert state_of(late) is LogDbState.PARTS_ONLY


def test_parts_beside_content_come_first() -> None:
    """Content plus a final part stored later: the workflow starts and aggregates by itself."""
    assert classify(row(has_content=True, parts=2, final_number=1), FORCE_AFTER_S).action is (
        Action.START
    )


def test_summary_table_counts_states_by_outcome() -> None:
    """The reconcile summary has one row per state and one column per outcome seen."""
    items = [
        FixedLog(1, "parts_only", "force_aggregate", "forced"),
        FixedLog(2, "parts_only", "start", "started"),
        FixedLog(3, "purged", "none", "done"),
        FixedLog(4, "purged", "none", "done"),
    ]
    console = Console(width=100, record=True)
    console.print(summary_table(items, dry_run=False))
    text = console.export_text()
    assert "4 candidate logs" in text
    assert [c.header for c in summary_table(items, dry_run=False).columns] == [
        "state",
        "started",
        "forced",
        "done",
    ]
