"""A namespace without the search attributes: the worker refuses to start, or adds them.

Against a dev server started without them, as a namespace created by hand would be: without
the check the worker starts and every workflow task that sets one fails, forever.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.testing import WorkflowEnvironment

from tests.helpers import assert_eventually, settings_env
from travis_logs import search_attributes
from travis_logs.binaries import executable
from travis_logs.settings import Settings
from travis_logs.temporal import DATA_CONVERTER
from workflows.models import SEARCH_ATTRIBUTES

NAMES = [key.name for key in SEARCH_ATTRIBUTES]


@pytest_asyncio.fixture
async def bare_server() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server that knows none of the project's search attributes."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=executable("temporal"),
        data_converter=DATA_CONVERTER,
        dev_server_startup_timeout=timedelta(seconds=30),
    )
    yield env
    await env.shutdown()


@pytest.fixture
def on_bare(settings: Settings, bare_server: WorkflowEnvironment) -> Settings:
    address = bare_server.client.service_client.config.target_host
    return settings.model_copy(update={"temporal_address": address, "worker_shutdown_grace_s": 1})


async def _cli(settings: Settings, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "workers.cli",
        *args,
        env=settings_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _refused(settings: Settings, *args: str) -> str:
    """Run the command; it must exit 2 with one `travis-logs:` line (no traceback): that line."""
    process = await _cli(settings, *args)
    _, err = await asyncio.wait_for(process.communicate(), 60)  # a hang guard, not a timing
    stderr = err.decode()
    assert process.returncode == 2, stderr
    assert "Traceback" not in stderr
    [line] = [x for x in stderr.splitlines() if x.startswith("travis-logs:")]
    return line


async def test_worker_and_migrate_refuse_a_namespace_without_the_attributes(
    on_bare: Settings, bare_server: WorkflowEnvironment
) -> None:
    """Exit 2 naming each missing attribute and the command that adds it; `migrate
    --register` adds them."""
    for command in (("worker",), ("migrate",)):
        line = await _refused(on_bare, *command)
        assert "TEMPORAL_NAMESPACE" in line, line
        for name in NAMES:
            assert f"--name {name} --type" in line, line
        assert "travis-logs migrate --register" in line

    process = await _cli(on_bare, "migrate", "--register")
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert await search_attributes.mismatches(bare_server.client, SEARCH_ATTRIBUTES) == []


async def test_worker_register_adds_them_and_runs(
    on_bare: Settings, bare_server: WorkflowEnvironment
) -> None:
    """`worker --register` adds what is missing, then polls until SIGTERM stops it cleanly."""
    client: Client = bare_server.client
    process = await _cli(on_bare, "worker", "--register")
    try:

        async def registered() -> None:
            assert process.returncode is None, await process.stderr.read()  # type: ignore[union-attr]
            assert await search_attributes.mismatches(client, SEARCH_ATTRIBUTES) == []

        await assert_eventually(registered, timeout=60)
        # A worker that started: its deployment version is routed to once it polls.
        process.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    # With them in place the plain worker starts too; a missing bucket is refused instead.
    line = await _refused(on_bare.model_copy(update={"s3_bucket": "no-such-bucket"}), "worker")
    assert "S3_BUCKET" in line and "no-such-bucket" in line


def test_the_sentence_names_wrong_types_and_how_to_fix_them() -> None:
    """A missing attribute and one of the wrong type, in one sentence."""
    problems = [
        search_attributes.Mismatch(SearchAttributeKey.for_bool("LogIncomplete"), None),
        search_attributes.Mismatch(SearchAttributeKey.for_int("JobId"), "Keyword"),
    ]
    line = search_attributes.describe("prod", problems, register_hint=True)
    assert "lacks the search attributes LogIncomplete (Bool)" in line
    assert "--namespace prod --name LogIncomplete --type Bool" in line
    assert "JobId is Keyword, not Int" in line
    assert "\n" not in line
