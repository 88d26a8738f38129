"""Which signals start a sleeping run: the first part's only (no services)."""

from __future__ import annotations

from datetime import timedelta

from travis_logs.settings import Settings
from workflows.client import start_delay
from workflows.models import PartRef, PartsSignal


def test_only_the_opening_signal_starts_a_run_asleep() -> None:
    """The first part sleeps until LOGS_FORCE_AFTER_S; a final, late or resent part starts
    (or wakes) the run at once."""
    settings = Settings(_env_file=None, logs_force_after_s=7200)
    first = PartsSignal(1, [PartRef(0, 3)], opens=True)
    assert start_delay(settings, first) == timedelta(hours=2)
    assert start_delay(settings, PartsSignal(1, [PartRef(9, 0, final=True)])) is None
    assert start_delay(settings, PartsSignal(1, [PartRef(12, 3)])) is None
