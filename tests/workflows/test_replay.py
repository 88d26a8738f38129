"""Replaying recorded LogWorkflow histories guards determinism.

The corpus in histories/ comes from the lifecycle tests; regenerate it after an intended
change to the workflow's commands with `RECORD_HISTORIES=1 pytest tests/workflows`, and
roll that change out as a new build under Worker Versioning (README, "Deploying a new
worker build"): LogWorkflow is PINNED, so a run stays on the build that started it.
histories/previous/ holds the corpus of the build before the one-task lifecycle (timers for
the force timeout and the grace window, the upload as a regular activity): its runs finish
on that build, and today's code refuses them, as the pinning expects.
lifecycle_started_at_once.json is a log whose run started at its first part without a start
delay (three workflow tasks, as before the delay; as a resent signal still starts a run): the
same code replays it, so runs started before the delay finish on this build too.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.workflow import NondeterminismError

from tests.workflows.support import HISTORIES
from tests.workflows.variants import IgnoresTheStartDelay, SkipsTheDatabaseRead
from travis_logs.temporal import DATA_CONVERTER
from workflows.log_workflow import LogWorkflow

CORPUS = sorted(HISTORIES.glob("*.json"))
PREVIOUS = sorted((HISTORIES / "previous").glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text(encoding="utf-8"))


def test_corpus_covers_the_lifecycle_paths() -> None:
    """The recorded histories include every path the replay is meant to guard."""
    expected = {
        "lifecycle",
        "lifecycle_new_row",
        "lifecycle_started_at_once",
        "silent_woke_at_start_delay",
        "replace_while_asleep",
        "late_part_during_pipeline",
        "late_part_after_close",
        "continued_as_new_last_run",
        "replace_content",
        "verify_failed_then_rearchive",
        "rearchive_backoff",
        "force_timeout",
        "rearchive_mid_round",
        "incomplete_then_complete",
        "redact",
    }
    assert expected <= {path.stem for path in CORPUS}


@pytest.mark.parametrize("path", CORPUS, ids=lambda path: path.stem)
async def test_recorded_history_replays_without_nondeterminism(path: Path) -> None:
    """Today's LogWorkflow makes the same commands as the run that was recorded."""
    replayer = Replayer(workflows=[LogWorkflow], data_converter=DATA_CONVERTER)
    await replayer.replay_workflow(load(path))


@pytest.mark.parametrize("path", PREVIOUS, ids=lambda path: path.stem)
async def test_runs_of_the_previous_build_stay_pinned_to_it(path: Path) -> None:
    """The one-task lifecycle changed the command sequence: a run recorded on the previous
    build does not replay here, which is why LogWorkflow is PINNED (a run never moves)."""
    with pytest.raises(NondeterminismError):
        await Replayer(workflows=[LogWorkflow], data_converter=DATA_CONVERTER).replay_workflow(
            load(path)
        )


async def test_a_changed_command_sequence_is_caught() -> None:
    """Dropping the first database read makes replay fail instead of running on silently."""
    with pytest.raises(NondeterminismError):
        await Replayer(workflows=[SkipsTheDatabaseRead]).replay_workflow(
            load(HISTORIES / "lifecycle.json")
        )


async def test_a_run_woken_by_its_start_delay_must_check_for_silence() -> None:
    """The silent log's history (a run that slept, woke at the delay's end, force-checked and
    archived) does not replay on code that waits on for the final part instead."""
    with pytest.raises(NondeterminismError):
        await Replayer(workflows=[IgnoresTheStartDelay]).replay_workflow(
            load(HISTORIES / "silent_woke_at_start_delay.json")
        )
