"""The worker's poller layout and the dev server's partitions follow the settings."""

from __future__ import annotations

from pathlib import Path

from temporalio.worker import PollerBehaviorAutoscaling, PollerBehaviorSimpleMaximum

from travis_logs.settings import Settings
from workers.devstack import temporal_spec
from workers.temporal_worker import worker_options


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None).model_copy(update=values)


def test_workflow_task_polls_are_a_fixed_number_by_default() -> None:
    options = worker_options(_settings(worker_workflow_task_pollers=8))
    assert options["workflow_task_poller_behavior"] == PollerBehaviorSimpleMaximum(maximum=8)


def test_autoscaling_polls_stay_within_the_configured_maximum() -> None:
    settings = _settings(worker_poller_autoscaling=True, worker_workflow_task_pollers=20)
    behavior = worker_options(settings)["workflow_task_poller_behavior"]
    assert isinstance(behavior, PollerBehaviorAutoscaling)
    assert behavior.minimum <= behavior.initial <= behavior.maximum == 20


def test_the_dev_server_gets_the_configured_partitions(tmp_path: Path) -> None:
    argv = temporal_spec(_settings(dev_temporal_partitions=1), tmp_path).argv
    values = [argv[i + 1] for i, arg in enumerate(argv) if arg == "--dynamic-config-value"]
    assert "matching.numTaskqueueReadPartitions=1" in values
    assert "matching.numTaskqueueWritePartitions=1" in values
