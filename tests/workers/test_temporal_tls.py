"""Temporal over mTLS, configured the way every Temporal tool reads it (temporalio.envconfig).

A worker process configured through TEMPORAL_TLS_* variables only, and a client in the test
configured the same way, run a log's whole lifecycle through a TLS-terminating relay that
requires a client certificate of a CA made here.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from tests.helpers import joined, settings_env, store_parts
from tests.workers.tls_support import Authority, TlsTerminator, make_authority
from tests.workflows.support import fast, send
from travis_logs.archive_store import ArchiveStore
from travis_logs.errors import ConfigError
from travis_logs.settings import Settings
from travis_logs.temporal import connect
from workflows.models import LogState

PARTS = {0: "over tls\n", 1: "with a client certificate\n", 2: ""}


@pytest_asyncio.fixture
async def relay(
    tmp_path: Path, temporal_env: WorkflowEnvironment
) -> AsyncIterator[tuple[str, Authority]]:
    authority = make_authority(tmp_path)
    host, _, port = temporal_env.client.service_client.config.target_host.rpartition(":")
    terminator = TlsTerminator(authority, (host, int(port)))
    address = f"127.0.0.1:{await terminator.start()}"
    yield address, authority
    await terminator.close()


def tls_env(authority: Authority, *, client_certificate: bool = True) -> dict[str, str]:
    env = {
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(authority.ca),
        "TEMPORAL_TLS_SERVER_NAME": "localhost",
    }
    if client_certificate:
        env["TEMPORAL_TLS_CLIENT_CERT_PATH"] = str(authority.client.cert)
        env["TEMPORAL_TLS_CLIENT_KEY_PATH"] = str(authority.client.key)
    return env


async def test_a_lifecycle_through_mtls(
    relay: tuple[str, Authority],
    settings: Settings,
    pool: asyncpg.Pool,
    store: ArchiveStore,
    job_id: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Refused without a client certificate; with one, parts in, archive verified, purged."""
    address, authority = relay
    on_tls = fast(settings, temporal_address=address, worker_shutdown_grace_s=1)

    for key, value in tls_env(authority, client_certificate=False).items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match="TEMPORAL_ADDRESS"):
        await connect(on_tls)

    for key, value in tls_env(authority).items():
        monkeypatch.setenv(key, value)
    client = await connect(on_tls)

    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "workers.cli",
            "worker",
            env=settings_env(on_tls, **tls_env(authority)),
            stdout=out,
            stderr=out,
        )
    try:
        await store_parts(pool, job_id, PARTS, final=2)
        handle = await send(client, on_tls, job_id, PARTS, final=2)
        result = await asyncio.wait_for(handle.result(), 120)  # a hang guard
        assert result.state == LogState.DONE, log.read_text()
    finally:
        worker.terminate()
        await asyncio.wait_for(worker.wait(), 60)
    assert worker.returncode == 0, log.read_text()
    assert await store.fetch(job_id) == joined(PARTS).encode()
