"""The embedded services of `travis-logs dev`: Temporal dev server and moto S3."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from stamina import retry_context
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client

from travis_logs.binaries import executable
from travis_logs.checks import port_is_free
from travis_logs.errors import ConfigError
from travis_logs.settings import Settings
from travis_logs.temporal import connect
from workers.supervisor import ProcessSpec
from workflows.models import SEARCH_ATTRIBUTES


@contextlib.contextmanager
def single_instance(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock for the stack's lifetime; a second `dev` gets a clear refusal."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip() or "?"
            raise ConfigError(
                f"`travis-logs dev` is already running (pid {pid}, lock {lock_path}); "
                "stop it with Ctrl-C first"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield  # the kernel drops the lock when the file closes, even after a crash


def check_ports_free(ports: dict[str, int]) -> None:
    """Refuse to start, naming the setting, when a port the stack needs is taken."""
    for setting, port in ports.items():
        if not port_is_free(port):
            raise ConfigError(
                f"{setting}: port {port} is already in use by another process; "
                f"stop that process or set {setting} to a free port"
            )


def temporal_spec(settings: Settings, data_dir: Path) -> ProcessSpec:
    host, port = settings.temporal_host_port
    argv = [
        executable("temporal"),
        "server",
        "start-dev",
        "--ip",
        host,
        "--port",
        str(port),
        "--ui-port",
        str(settings.dev_temporal_ui_port),
        "--db-filename",
        str(data_dir / "temporal.db"),
        # WAL: about 3x the throughput of SQLite's default journal on this hardware.
        "--sqlite-pragma",
        "journal_mode=wal",
        "--sqlite-pragma",
        "synchronous=normal",
        "--ui-disable-news-fetch",
        "--log-level",
        "warn",
    ]
    return ProcessSpec("temporal", argv, log_file=data_dir / "temporal.log")


def s3_spec(settings: Settings, data_dir: Path) -> ProcessSpec:
    """moto, writing every object through to `data_dir/s3`, so archives outlive the stack."""
    argv = [sys.executable, "-m", "workers.cli", "s3-server", "--data-dir", str(data_dir / "s3")]
    env = {**os.environ, "DEV_S3_PORT": str(settings.dev_s3_port)}
    return ProcessSpec("s3", argv, env=env, log_file=data_dir / "s3.log")


async def wait_for_temporal(settings: Settings, timeout: float = 30) -> Client:
    try:
        async for attempt in retry_context(
            on=RuntimeError,
            attempts=None,
            timeout=timeout,
            wait_initial=0.2,
            wait_max=1.0,
            wait_jitter=0.2,
        ):
            with attempt:
                return await connect(settings)
    except RuntimeError:
        pass
    raise ConfigError(
        f"TEMPORAL_ADDRESS: the dev server did not answer on "
        f"{settings.temporal_address} within {timeout:.0f} s; see .data/temporal.log"
    )


async def register_search_attributes(client: Client) -> list[str]:
    """Add the missing ones: `--search-attribute` is ignored for an existing database file."""
    ops = client.operator_service
    listed = await ops.list_search_attributes(
        ListSearchAttributesRequest(namespace=client.namespace)
    )
    missing = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type.value)
        for key in SEARCH_ATTRIBUTES
        if key.name not in listed.custom_attributes
    }
    if missing:
        await ops.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
    return sorted(missing)
