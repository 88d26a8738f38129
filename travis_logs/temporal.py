"""The Temporal client of a process, built from settings in its entry point."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from travis_logs.settings import Settings


def metrics_runtime(port: int, host: str) -> Runtime:
    """A runtime whose SDK metrics (and workflow.metric_meter()) Prometheus scrapes on `port`."""
    return Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(bind_address=f"{host}:{port}", durations_as_seconds=True)
        )
    )


async def connect(settings: Settings, runtime: Runtime | None = None) -> Client:
    return await Client.connect(
        settings.temporal_address, namespace=settings.temporal_namespace, runtime=runtime
    )
