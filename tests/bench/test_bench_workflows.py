"""The lifecycle bench's baseline workflow passes the sandbox's validation, as `make bench`
runs it (the sandbox imports the bench's module again: code at its top must run there)."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.worker import Worker

from bench.lifecycle import BareWorkflow, noop


async def test_a_worker_accepts_the_bare_workflow(temporal_client: Client) -> None:
    worker = Worker(
        temporal_client, task_queue="bench-bare-check", workflows=[BareWorkflow], activities=[noop]
    )
    assert worker.task_queue == "bench-bare-check"
