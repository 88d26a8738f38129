"""Lifecycle histograms and the SDK's metrics on the worker's Prometheus endpoint."""

from __future__ import annotations

import uuid

import httpx
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.helpers import assert_eventually, free_port
from tests.workflows.metrics_probe import MetricsProbe, probe_step
from travis_logs.temporal import metrics_runtime
from workflows.lifecycle_metrics import HISTOGRAMS, METRICS, SDK_METRICS


def exposed(text: str) -> set[str]:
    """Metric names in a Prometheus text exposition, without _bucket/_sum/_count."""
    names = set()
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            for suffix in ("_bucket", "_sum", "_count"):
                name = name.removesuffix(suffix)
            names.add(name)
    return names


async def test_lifecycle_and_sdk_metrics_are_exported(temporal_env: WorkflowEnvironment) -> None:
    """After one run the worker's endpoint lists every lifecycle metric and the SDK's."""
    port = free_port()
    target = temporal_env.client.service_client.config.target_host
    client = await Client.connect(target, runtime=metrics_runtime(port, "127.0.0.1"))
    queue = f"tq-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[MetricsProbe], activities=[probe_step]):
        await client.execute_workflow(MetricsProbe.run, id=f"probe-{queue}", task_queue=queue)

        async def scraped() -> set[str]:
            async with httpx.AsyncClient() as http:
                text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
            names = exposed(text)
            assert names >= METRICS | SDK_METRICS, (METRICS | SDK_METRICS) - names
            return names

        await assert_eventually(scraped)
    assert HISTOGRAMS <= METRICS
