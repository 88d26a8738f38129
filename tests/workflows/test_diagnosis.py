"""The status line, from a workflow state, a row and an archive (no services)."""

from __future__ import annotations

from datetime import UTC, datetime

from activities.reconcile_plan import LogRow
from travis_logs.logrow import RowText
from workflows.diagnosis import Archive, Level, diagnose
from workflows.models import LogState, LogStats, LogWorkflowState

PURGED = LogRow(1, 7, RowText(False, purge_stamped=True), archived=True, archive_verified=True)
ARCHIVE = Archive(12, "ab" * 32, "ab" * 32)


def test_open_run_speaks_for_the_log() -> None:
    """While a run is open its state decides; verify_failed asks for an operator."""
    failed = LogWorkflowState(
        state=LogState.VERIFY_FAILED, stats=LogStats(archive_attempts=5, last_error="x")
    )
    verdict = diagnose(7, PURGED, ARCHIVE, "RUNNING", failed)
    assert verdict.level is Level.ATTENTION
    assert verdict.line.startswith("verify_failed: gave up after 5 archive attempts (x)")


def test_a_sleeping_run_is_a_streaming_log_not_a_stuck_one() -> None:
    """A run in its start delay answers no query; the status says it waits, and until when."""
    row = LogRow(1, 7, RowText(has_text=True))
    until = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    verdict = diagnose(7, row, Archive(None), "RUNNING", None, asleep_until=until)
    assert verdict.level is Level.OK
    assert verdict.line.startswith("streaming: parts arriving")
    assert "2026-01-02 03:04:05 UTC" in verdict.line


def test_closed_run_and_an_unfinished_row_is_stuck() -> None:
    """No open run but content left: stuck, and reconcile is the way out."""
    row = LogRow(1, 7, RowText(has_text=True))
    verdict = diagnose(7, row, Archive(None), "TERMINATED", None)
    assert verdict.level is Level.ATTENTION and "reconcile" in verdict.line


def test_done_needs_the_archive() -> None:
    """Purged with its archive is done; purged without one, or with a changed one, is not."""
    assert diagnose(7, PURGED, ARCHIVE, "COMPLETED", None).line.startswith("done:")
    assert diagnose(7, PURGED, Archive(None), None, None).level is Level.ATTENTION
    changed = Archive(12, "cd" * 32, "ab" * 32)
    assert diagnose(7, PURGED, changed, None, None).level is Level.ATTENTION


def test_nothing_known() -> None:
    assert diagnose(7, None, Archive(None), None, None).level is Level.MISSING
